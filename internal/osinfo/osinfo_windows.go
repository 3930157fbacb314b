package osinfo

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// version is major.minor.build from RtlGetVersion, which (unlike
// GetVersionEx) is not shimmed to an older version for unmanifested
// programs: "10.0.22631" is Windows 11 23H2.
func version() string {
	v := windows.RtlGetVersion()
	return fmt.Sprintf("%d.%d.%d", v.MajorVersion, v.MinorVersion, v.BuildNumber)
}
