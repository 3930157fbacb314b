package winsvc

import (
	"strings"
	"time"
)

// RestartDelays is the recovery sequence of the service: restart 1 s after
// the first failure, 5 s after the second, then 30 s after every further one
// (the SCM repeats the last action). ResetPeriod clears the failure count
// after a day without failures.
var RestartDelays = []time.Duration{1 * time.Second, 5 * time.Second, 30 * time.Second}

// ResetPeriod is the failure-count reset period of the recovery actions.
const ResetPeriod = 24 * time.Hour

// Service access rights as SDDL abbreviations (MS-DTYP 2.4.4.1, "Service
// access rights" in the Windows SDK: SERVICE_QUERY_CONFIG = CC, ...).
const (
	rightQueryConfig   = "CC" // SERVICE_QUERY_CONFIG
	rightChangeConfig  = "DC" // SERVICE_CHANGE_CONFIG
	rightQueryStatus   = "LC" // SERVICE_QUERY_STATUS
	rightEnumDeps      = "SW" // SERVICE_ENUMERATE_DEPENDENTS
	rightStart         = "RP" // SERVICE_START
	rightStop          = "WP" // SERVICE_STOP
	rightPauseContinue = "DT" // SERVICE_PAUSE_CONTINUE
	rightInterrogate   = "LO" // SERVICE_INTERROGATE
	rightUserControl   = "CR" // SERVICE_USER_DEFINED_CONTROL
	rightDelete        = "SD" // DELETE
	rightReadControl   = "RC" // READ_CONTROL
	rightWriteDAC      = "WD" // WRITE_DAC
	rightWriteOwner    = "WO" // WRITE_OWNER
)

// ACE is one access-allowed entry of the service DACL.
type ACE struct {
	Trustee string   // SDDL SID alias: SY LocalSystem, BA Administrators, AU Authenticated Users
	Rights  []string // SDDL right abbreviations
}

// ServiceDACL is who may do what to the netward service. Non-administrators
// may see that it runs and how it is configured, but not stop, pause,
// reconfigure, delete it or change this DACL. Unlike the default service
// DACL there is no SERVICE_USER_DEFINED_CONTROL for users, and no entry for
// Interactive/Service users beyond Authenticated Users.
var ServiceDACL = []ACE{
	{"SY", []string{rightQueryConfig, rightQueryStatus, rightEnumDeps, rightStart, rightStop, rightPauseContinue, rightInterrogate, rightUserControl, rightReadControl}},
	{"BA", []string{rightQueryConfig, rightChangeConfig, rightQueryStatus, rightEnumDeps, rightStart, rightStop, rightPauseContinue, rightInterrogate, rightUserControl, rightDelete, rightReadControl, rightWriteDAC, rightWriteOwner}},
	{"AU", []string{rightQueryConfig, rightQueryStatus, rightEnumDeps, rightInterrogate, rightReadControl}},
}

// SDDL renders a DACL as a security descriptor string (D: part only), the
// form SecurityDescriptorFromString and `sc sdset` take.
func SDDL(dacl []ACE) string {
	var b strings.Builder
	b.WriteString("D:")
	for _, a := range dacl {
		b.WriteString("(A;;" + strings.Join(a.Rights, "") + ";;;" + a.Trustee + ")")
	}
	return b.String()
}

// DirSDDL is the protected DACL `netward install` puts on the config and data
// directories (%ProgramData%\netward and below): full control for SYSTEM and
// Administrators, read and execute for Users, nothing inherited from
// %ProgramData% (whose Users may create files and folders). The agent refuses
// to start from directories others can write (agent.CheckPermissions).
// OICI: inherited by files and subdirectories; FA: FILE_ALL_ACCESS;
// 0x1200a9: FILE_GENERIC_READ | FILE_GENERIC_EXECUTE.
const DirSDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)"
