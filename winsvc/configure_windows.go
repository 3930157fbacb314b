package winsvc

import (
	"fmt"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc/mgr"
)

// Configure sets the recovery actions (also on non-crash failures) and the
// DACL of the installed service name.
func Configure(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service control manager: %w (run from an Administrator prompt)", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("open service %s: %w", name, err)
	}
	defer s.Close()
	actions := make([]mgr.RecoveryAction, len(RestartDelays))
	for i, d := range RestartDelays {
		actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d}
	}
	if err := s.SetRecoveryActions(actions, uint32(ResetPeriod.Seconds())); err != nil {
		return fmt.Errorf("set recovery actions: %w", err)
	}
	// SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: also recover when the service
	// stops itself with a non-zero exit code, not only when it crashes.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("set recovery on non-crash failures: %w", err)
	}
	sd, err := windows.SecurityDescriptorFromString(SDDL(ServiceDACL))
	if err != nil {
		return fmt.Errorf("parse service DACL: %w", err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("service DACL: %w", err)
	}
	if err := windows.SetSecurityInfo(s.Handle, windows.SE_SERVICE, windows.DACL_SECURITY_INFORMATION, nil, nil, dacl, nil); err != nil {
		return fmt.Errorf("set service DACL: %w", err)
	}
	return nil
}
