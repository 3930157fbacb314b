package winsvc

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRestartDelays(t *testing.T) {
	want := []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	if !slices.Equal(RestartDelays, want) {
		t.Errorf("RestartDelays = %v, want %v (the SCM repeats the last one)", RestartDelays, want)
	}
}

func TestServiceDACL(t *testing.T) {
	const want = "D:(A;;CCLCSWRPWPDTLOCRRC;;;SY)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)(A;;CCLCSWLORC;;;AU)"
	if got := SDDL(ServiceDACL); got != want {
		t.Errorf("SDDL = %s, want %s", got, want)
	}
	// Only Administrators may stop, reconfigure, delete or re-permission the
	// service; SYSTEM may start and stop it (the SCM's recovery runs as SYSTEM).
	adminOnly := []string{rightStop, rightChangeConfig, rightDelete, rightWriteDAC, rightWriteOwner, rightPauseContinue, rightUserControl, rightStart}
	for _, ace := range ServiceDACL {
		if ace.Trustee == "BA" || ace.Trustee == "SY" {
			continue
		}
		for _, r := range adminOnly {
			if slices.Contains(ace.Rights, r) {
				t.Errorf("trustee %s has right %s", ace.Trustee, r)
			}
		}
	}
	i := slices.IndexFunc(ServiceDACL, func(a ACE) bool { return a.Trustee == "BA" })
	if i < 0 || !slices.Contains(ServiceDACL[i].Rights, rightStop) || !slices.Contains(ServiceDACL[i].Rights, rightChangeConfig) {
		t.Errorf("Administrators cannot stop or reconfigure the service: %v", ServiceDACL)
	}
}

func TestDirSDDL(t *testing.T) {
	// Protected (P): nothing inherited from %ProgramData%, whose Users may
	// create files; full access (FA) only for SYSTEM and Administrators.
	if !strings.HasPrefix(DirSDDL, "D:P(") {
		t.Errorf("DirSDDL %s is not a protected DACL", DirSDDL)
	}
	aces := regexp.MustCompile(`\(A;OICI;([^;]+);;;([A-Z]+)\)`).FindAllStringSubmatch(DirSDDL, -1)
	if len(aces) != 3 {
		t.Fatalf("DirSDDL %s: %d ACEs, want 3", DirSDDL, len(aces))
	}
	for _, a := range aces {
		rights, who := a[1], a[2]
		if rights == "FA" && who != "SY" && who != "BA" {
			t.Errorf("%s has full access", who)
		}
		if who == "BU" && rights != "0x1200a9" {
			t.Errorf("Users have %s, want read and execute (0x1200a9)", rights)
		}
	}
}
