module github.com/netward/netward

go 1.25.0

require (
	go.etcd.io/bbolt v1.5.0
	golang.org/x/net v0.47.0
	golang.org/x/sync v0.20.0
)

require (
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/text v0.31.0 // indirect
)
