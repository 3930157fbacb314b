package winsvc

import (
	"slices"
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
