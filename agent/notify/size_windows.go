package notify

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

func sizeofStartupInfo() uintptr { return unsafe.Sizeof(windows.StartupInfo{}) }
