// Command discobench is the harness of `make bench-discovery`
// (scripts/bench-discovery.sh): it generates a browsing day and replays it
// against a DNS server, faster than real time, and writes dnsperf query
// files for the allowed (never cached) and cached workloads. It talks to
// the address it is given only.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/miekg/dns"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: discobench day|queries [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "day":
		err = day(os.Args[2:])
	case "queries":
		err = queries(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "discobench:", err)
		os.Exit(1)
	}
}

// lookup is one name resolution of the day, at an offset from midnight.
type lookup struct {
	at   time.Duration
	name string
}

// browsingDay generates a working day of one machine: names drawn with a
// Zipf popularity (a few sites most of the time, a long tail once), 85 %
// of the lookups between 08:00 and 18:00, the rest spread over the day
// (updates, mail, chat in the background).
func browsingDay(names, lookups int, seed uint64) []lookup {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	z := rand.NewZipf(r, 1.1, 4, uint64(names-1))
	out := make([]lookup, lookups)
	for i := range out {
		var at time.Duration
		if r.Float64() < 0.85 {
			at = 8*time.Hour + time.Duration(r.Int64N(int64(10*time.Hour)))
		} else {
			at = time.Duration(r.Int64N(int64(24 * time.Hour)))
		}
		n := z.Uint64()
		out[i] = lookup{at: at, name: fmt.Sprintf("www%d.site%d.example.", n%3, n)}
	}
	slices.SortFunc(out, func(a, b lookup) int { return int(a.at - b.at) })
	return out
}

// day replays the day against -server, -scale times faster than real
// time, each lookup as a browser does it (A and AAAA, a new socket each).
func day(args []string) error {
	fs := flag.NewFlagSet("day", flag.ExitOnError)
	server := fs.String("server", "127.0.0.1:25411", "DNS server")
	scale := fs.Float64("scale", 600, "replay speed-up")
	names := fs.Int("names", 3000, "distinct names")
	lookups := fs.Int("lookups", 40000, "lookups in the day")
	_ = fs.Parse(args)
	day := browsingDay(*names, *lookups, 1)
	c := &dns.Client{Timeout: 2 * time.Second}
	start := time.Now()
	sent, failed := 0, 0
	for _, l := range day {
		if d := time.Duration(float64(l.at)/(*scale)) - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m := new(dns.Msg)
			m.SetQuestion(l.name, qt)
			if _, _, err := c.Exchange(m, *server); err != nil {
				failed++
			}
			sent++
		}
	}
	distinct := map[string]bool{}
	for _, l := range day {
		distinct[l.name] = true
	}
	fmt.Printf("SENT %d queries (%d lookups of %d names, %d failed) in %v\n", sent, len(day), len(distinct), failed, time.Since(start).Round(time.Second))
	return nil
}

// queries writes a dnsperf file: -n distinct names ("allowed": each asked
// once, so never cached) or -n names asked in turn ("cached").
func queries(args []string) error {
	fs := flag.NewFlagSet("queries", flag.ExitOnError)
	n := fs.Int("n", 1000, "names")
	prefix := fs.String("prefix", "c", "name prefix")
	out := fs.String("out", "", "file")
	_ = fs.Parse(args)
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := range *n {
		fmt.Fprintf(w, "%s%d.bench.example A\n", *prefix, i)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
