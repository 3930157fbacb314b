package discoverye2e

import (
	"os"
	"testing"

	"github.com/netward/netward/internal/e2e"
)

func TestMain(m *testing.M) { os.Exit(e2e.Main(m)) }
