package discovery

import (
	"strings"
	"testing"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
)

func TestCheck(t *testing.T) {
	ok := store.DiscoveryPolicy{Name: "p", Tag: "Monitored", PeriodDays: 30, MinUsers: 1}
	if err := Check(ok); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*store.DiscoveryPolicy){
		"no condition": func(p *store.DiscoveryPolicy) { p.MinUsers = 0 },
		"bad tag":      func(p *store.DiscoveryPolicy) { p.Tag = "Blocked" },
		"long period":  func(p *store.DiscoveryPolicy) { p.PeriodDays = 91 },
		"negative":     func(p *store.DiscoveryPolicy) { p.MinBytes = -1 },
		"bad pattern":  func(p *store.DiscoveryPolicy) { p.NamePattern = "[" },
		"no name":      func(p *store.DiscoveryPolicy) { p.Name = " " },
	} {
		p := ok
		mod(&p)
		if Check(p) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMatches(t *testing.T) {
	app := catalog.App{ID: "discord", Name: "Discord", Categories: []string{"Chat"}}
	s := store.AppStat{AppID: "discord", Users: 3, Counters: store.Counters{Transactions: 10, BytesSent: 600, BytesReceived: 400}}
	p := store.DiscoveryPolicy{Name: "chat", Category: "chat", NamePattern: "dis*", MinUsers: 3, MinBytes: 1000, MinTransactions: 10, PeriodDays: 7}
	reason, ok := matches(p, app, s)
	if !ok || !strings.Contains(reason, "3 users ≥ 3") || !strings.Contains(reason, "1000 bytes ≥ 1000") || !strings.Contains(reason, "over 7 days") {
		t.Errorf("matches = %q %v", reason, ok)
	}
	for _, q := range []store.DiscoveryPolicy{
		{Category: "Cloud storage", PeriodDays: 7},
		{NamePattern: "slack*", PeriodDays: 7},
		{MinUsers: 4, PeriodDays: 7},
		{MinBytes: 1001, PeriodDays: 7},
		{MinTransactions: 11, PeriodDays: 7},
	} {
		if _, ok := matches(q, app, s); ok {
			t.Errorf("%+v matched", q)
		}
	}
}
