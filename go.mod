module github.com/netward/netward

go 1.25.0

require (
	github.com/quic-go/quic-go v0.59.0
	golang.org/x/crypto v0.48.0
	golang.org/x/net v0.50.0
	golang.org/x/sync v0.19.0
)

require golang.org/x/text v0.34.0 // indirect
