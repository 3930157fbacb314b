module github.com/netward/netward

go 1.25.0

require (
	github.com/godbus/dbus/v5 v5.2.4
	go.etcd.io/bbolt v1.5.0
	golang.org/x/net v0.47.0
	golang.org/x/sync v0.20.0
	golang.org/x/sys v0.45.0
)

require golang.org/x/text v0.31.0 // indirect
