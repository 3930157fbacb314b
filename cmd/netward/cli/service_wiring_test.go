package cli

import (
	"reflect"
	"testing"

	"github.com/netward/netward/winsvc"
)

// TestInstallWiresLockDown: `netward install` passes winsvc.PostInstall
// (recovery actions and the DACLs of the data directories on Windows), so
// the lock-down cannot silently drop out of the CLI (review of issue 15,
// finding 4).
func TestInstallWiresLockDown(t *testing.T) {
	sc := installConfig()
	if sc.PostInstall == nil {
		t.Fatal("install passes no PostInstall")
	}
	if got, want := reflect.ValueOf(sc.PostInstall).Pointer(), reflect.ValueOf(winsvc.PostInstall).Pointer(); got != want {
		t.Fatal("install passes a PostInstall other than winsvc.PostInstall")
	}
}
