// Package winsvc holds what netward needs from Windows beyond what
// kardianos/service does: the recovery actions and DACL of the service, the
// service control handler that reports "running" at once, an event-log
// logger, and the Group Policy registry reader (the overlay's table and
// rules are config.GroupPolicies and config.ApplyGroupPolicy).
//
// The logic (recovery sequence, DACL, control handler) lives
// in files without build tags so it is unit-tested on every platform; only
// the system calls live in _windows.go files.
package winsvc
