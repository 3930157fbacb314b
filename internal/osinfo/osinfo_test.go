package osinfo

import (
	"runtime"
	"testing"
)

func TestPrettyName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", "Debian GNU/Linux 12 (bookworm)"},
		{"PRETTY_NAME='Fedora Linux 40'\n", "Fedora Linux 40"},
		{"PRETTY_NAME=Arch\n", "Arch"},
		{"PRETTY_NAME=\"say \\\"hi\\\"\"\n", `say "hi"`},
		{"ID=alpine\n", ""},
	} {
		if got := prettyName([]byte(tc.in)); got != tc.want {
			t.Errorf("prettyName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVersionOnThisHost(t *testing.T) {
	if runtime.GOOS == "linux" && Version() == "" {
		t.Error("no OS version on Linux: neither os-release nor uname answered")
	}
	if Platform() != runtime.GOOS {
		t.Errorf("Platform() = %q", Platform())
	}
}
