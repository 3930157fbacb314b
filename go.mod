module github.com/netward/netward

go 1.25.0

require (
	golang.org/x/net v0.47.0
	golang.org/x/sync v0.18.0
)

require golang.org/x/text v0.31.0 // indirect
