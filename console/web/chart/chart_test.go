package chart

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/web/format"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// renderer is what every chart type offers.
type renderer interface {
	Render(io.Writer) error
}

func hourly(n int, f func(i int) float64) []Point {
	pts := make([]Point, n)
	for i := range pts {
		pts[i] = Point{T: t0.Add(time.Duration(i) * time.Hour), V: f(i)}
	}
	return pts
}

func daily(n int, f func(i int) []float64) []Bucket {
	b := make([]Bucket, n)
	for i := range b {
		b[i] = Bucket{T: t0.AddDate(0, 0, i), Values: f(i)}
	}
	return b
}

var goldenCharts = map[string]renderer{
	"line-traffic-24h": Line{Title: "Traffic", Unit: Bytes, Area: true, Series: []Series{
		{Name: "Download", Color: Blue, Points: hourly(24, func(i int) float64 { return float64((i%7)+1) * 180e6 })},
		{Name: "Upload", Color: Orange, Points: hourly(24, func(i int) float64 { return float64((i%5)+1) * 40e6 })},
	}},
	"line-transactions-7d": Line{Title: "Transactions", Unit: Count, Series: []Series{
		{Name: "Transactions", Points: hourly(168, func(i int) float64 { return float64(1000 + (i*37)%900) })},
	}},
	"line-gaps": Line{Title: "With gaps", Unit: Count, Series: []Series{
		{Name: "A", Points: []Point{{t0, 1}, {t0.Add(time.Hour), math.NaN()}, {t0.Add(2 * time.Hour), 3}, {t0.Add(3 * time.Hour), 4}}},
	}},
	"line-empty": Line{Title: "Nothing yet"},
	"bars-actions-30d": Bars{Title: "Policy actions", Step: 24 * time.Hour,
		Layers:  []Layer{{"Blocks", Vermillion}, {"Warns", Orange}, {"Bypasses", Purple}},
		Buckets: daily(30, func(i int) []float64 { return []float64{float64(40 + i*3%17), float64(12 + i%9), float64(i % 4)} })},
	"ranking-apps": Ranking{Title: "Top apps by traffic", Unit: Bytes, Items: []Item{
		{Label: "Dropbox", Value: 38.2e9, Note: "112 users"}, {Label: "GitHub", Value: 21.7e9}, {Label: "Slack", Value: 9.1e9},
		{Label: "OneDrive", Value: 30.4e9}, {Label: "A very long application name that will not fit", Value: 1e6},
	}, Max: 4},
	"sparkline": Sparkline{Label: "Traffic, 7 days", Unit: Bytes, Values: []float64{5, 8, 3, 9, 12, 7, 10}},
}

func TestGolden(t *testing.T) {
	for name, c := range goldenCharts {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := c.Render(&b); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden.html")
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("%s differs from %s (go test -update rewrites it after review):\n%s", name, path, b.String())
			}
			var again bytes.Buffer
			_ = c.Render(&again)
			if !bytes.Equal(b.Bytes(), again.Bytes()) {
				t.Errorf("%s: two renders differ", name)
			}
			checkWellFormed(t, b.Bytes())
		})
	}
}

// allowed are the elements a chart may produce; anything else means a label
// escaped into markup.
var allowed = map[string]bool{
	"figure": true, "div": true, "ul": true, "li": true, "svg": true, "rect": true, "title": true, "desc": true, "text": true,
	"line": true, "path": true, "circle": true, "g": true, "table": true, "caption": true, "thead": true,
	"tbody": true, "tr": true, "th": true, "td": true,
}

// checkWellFormed parses the fragment as XML and checks its elements and
// attribute values.
func checkWellFormed(t testing.TB, out []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(append(append([]byte("<root>"), out...), "</root>"...)))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("output is not well-formed: %v\n%s", err, out)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local == "root" {
			continue
		}
		if !allowed[se.Name.Local] {
			t.Fatalf("unexpected element <%s> in output:\n%s", se.Name.Local, out)
		}
		for _, a := range se.Attr {
			if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") || a.Name.Local == "style" || a.Name.Local == "href" {
				t.Fatalf("attribute %s in output", a.Name.Local)
			}
			if a.Name.Local != "aria-label" && (strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf")) {
				t.Fatalf("non-finite coordinate %s=%q", a.Name.Local, a.Value)
			}
		}
	}
}

func TestHostileLabelsAreEscaped(t *testing.T) {
	evil := `"><script>alert(1)</script><svg onload=alert(2)>&amp;` + "\x00\x1b\xff"
	for name, c := range map[string]renderer{
		"line":    Line{ID: evil, Title: evil, Desc: evil, Series: []Series{{Name: evil, Points: hourly(3, func(i int) float64 { return 1 })}, {Name: "b", Points: hourly(2, func(int) float64 { return 2 })}}},
		"bars":    Bars{Title: evil, Layers: []Layer{{Name: evil}, {Name: "x"}}, Buckets: daily(3, func(int) []float64 { return []float64{1, 2} })},
		"ranking": Ranking{Title: evil, Items: []Item{{Label: evil, Value: 1, Note: evil}}},
		"spark":   Sparkline{Label: evil, Values: []float64{1, 2}},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := c.Render(&b); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "<script") || strings.Contains(b.String(), "<svg onload") {
				t.Fatalf("label reached the markup:\n%s", b.String())
			}
			checkWellFormed(t, b.Bytes())
		})
	}
}

func TestOddData(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	many := hourly(5000, func(i int) float64 { return math.Sin(float64(i)/50) * 1e9 })
	cases := map[string]renderer{
		"all-nan":      Line{Title: "x", Series: []Series{{Name: "a", Points: hourly(5, func(int) float64 { return nan })}}},
		"inf-and-neg":  Line{Title: "x", Unit: Bytes, Series: []Series{{Name: "a", Points: []Point{{t0, inf}, {t0.Add(time.Hour), -5e6}, {t0.Add(2 * time.Hour), 1e308}, {t0.Add(3 * time.Hour), -1e308}}}}},
		"one-point":    Line{Title: "x", Series: []Series{{Name: "a", Points: []Point{{t0, 7}}}}},
		"same-times":   Line{Title: "x", Series: []Series{{Name: "a", Points: []Point{{t0, 1}, {t0, 2}, {t0, 3}}}}},
		"unsorted":     Line{Title: "x", Series: []Series{{Name: "a", Points: []Point{{t0.Add(3 * time.Hour), 1}, {t0, 2}, {t0.Add(time.Hour), 3}}}}},
		"zero-times":   Line{Title: "x", Series: []Series{{Name: "a", Points: []Point{{time.Time{}, 1}, {time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), 2}}}}},
		"5000-points":  Line{Title: "x", Series: []Series{{Name: "a", Points: many}}},
		"reversed-fix": Line{Title: "x", From: t0.Add(48 * time.Hour), To: t0, Series: []Series{{Name: "a", Points: hourly(3, func(int) float64 { return 1 })}}},
		"bars-ragged":  Bars{Title: "x", Layers: []Layer{{Name: "a"}, {Name: "b"}}, Buckets: []Bucket{{T: t0, Values: []float64{1}}, {T: t0.Add(time.Hour), Values: []float64{nan, -3, 9, 9}}, {T: t0, Values: nil}}},
		"bars-huge":    Bars{Title: "x", Layers: []Layer{{Name: "a"}, {Name: "b"}}, Buckets: daily(3, func(int) []float64 { return []float64{1e308, inf} })},
		"bars-2000":    Bars{Title: "x", Layers: []Layer{{Name: "a"}}, Buckets: daily(2000, func(i int) []float64 { return []float64{float64(i)} })},
		"bars-empty":   Bars{Title: "x"},
		"rank-odd":     Ranking{Title: "x", Items: []Item{{Label: "a", Value: nan}, {Label: "b", Value: -1}, {Label: "", Value: inf}, {Label: "c", Value: 0}}},
		"rank-empty":   Ranking{Title: "x"},
		"spark-odd":    Sparkline{Label: "x", Values: []float64{nan, inf, -inf, 3}},
		"spark-empty":  Sparkline{Label: "x"},
		"spark-long":   Sparkline{Label: "x", Values: make([]float64, 10000)},
		"spark-one":    Sparkline{Label: "x", Values: []float64{4}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := c.Render(&b); err != nil {
				t.Fatal(err)
			}
			checkWellFormed(t, b.Bytes())
			if b.Len() > 120_000 {
				t.Errorf("output is %d bytes; downsampling should keep it small", b.Len())
			}
		})
	}
}

func TestDownsampleKeepsPeakAndBounds(t *testing.T) {
	pts := hourly(2160, func(i int) float64 { return 10 })
	pts[1234].V = 1e9 // one burst in 90 days of hourly data
	var b bytes.Buffer
	if err := (Line{Title: "x", Series: []Series{{Name: "a", Points: pts}}, MaxPoints: 100}).Render(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "<tr>") - 1; n != 100 {
		t.Errorf("table rows = %d, want 100 (the downsampled points)", n)
	}
	if !strings.Contains(out, "(sampled: 100 of 2,160 points)") {
		t.Errorf("caption does not say the table is sampled")
	}
	burst := "<th scope=\"row\">" + format.Stamp(t0.Add(1234*time.Hour), time.Hour) + "</th><td>1 B</td>"
	if !strings.Contains(out, burst) {
		t.Errorf("the burst at %s was lost by downsampling", burst)
	}
	if !strings.Contains(out, "peak 1 B at "+format.Stamp(t0.Add(1234*time.Hour), time.Hour)) {
		t.Errorf("summary lost the peak: %s", out[:400])
	}
}

func TestLTTB(t *testing.T) {
	for _, tc := range []struct{ total, n, want int }{{0, 5, 0}, {1, 5, 1}, {10, 20, 10}, {100, 10, 10}, {1000, 3, 3}, {1000, 2, 3}} {
		xs, ys := make([]float64, tc.total), make([]float64, tc.total)
		for i := range xs {
			xs[i], ys[i] = float64(i), float64(i%7)
		}
		idx := lttb(xs, ys, tc.n)
		if len(idx) != tc.want {
			t.Errorf("lttb(%d points, %d) kept %d, want %d", tc.total, tc.n, len(idx), tc.want)
		}
		for k := 1; k < len(idx); k++ {
			if idx[k] <= idx[k-1] {
				t.Fatalf("lttb(%d, %d) indices not increasing: %v", tc.total, tc.n, idx)
			}
		}
		if tc.total > 0 && (idx[0] != 0 || idx[len(idx)-1] != tc.total-1) {
			t.Errorf("lttb(%d, %d) dropped an end point", tc.total, tc.n)
		}
	}
}

func TestYAxis(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		unit   Unit
		want   string
	}{
		{0, 7, Count, "0 2 4 6 8"},
		{0, 3, Count, "0 1 2 3"},
		{0, 0.2, Count, "0 1"},
		{0, 950e6, Bytes, "0 250 MB 500 MB 750 MB 1000 MB"},
		{0, 3.5 * (1 << 30), Bytes, "0 1 GB 2 GB 3 GB 4 GB"},
		{-40, 90, Count, "−50 0 50 100"},
		{0, 1234567, Count, "0 500,000 1 M 1.5 M"},
	} {
		a := newYAxis(tc.lo, tc.hi, tc.unit, 4)
		if got := strings.Join(a.labels, " "); got != tc.want {
			t.Errorf("newYAxis(%v, %v) labels %q, want %q", tc.lo, tc.hi, got, tc.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	for _, tc := range []struct {
		from, to time.Time
		want     string
	}{
		{t0, t0.Add(23 * time.Hour), "00:00 04:00 08:00 12:00 16:00 20:00"},
		{t0, t0.AddDate(0, 0, 7), "Mon 1 Tue 2 Wed 3 Thu 4 Fri 5 Sat 6 Sun 7 Mon 8"},
		{t0, t0.AddDate(0, 0, 30), "1 Jun 8 Jun 15 Jun 22 Jun 29 Jun"},
		{t0, t0.AddDate(0, 0, 90), "1 Jun 15 Jun 29 Jun 13 Jul 27 Jul 10 Aug 24 Aug"},
		{t0, t0, "1 Jun"},
		{time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "Jan 0001 Jan 1430 Jan 2859 Jan 4288 Jan 5717 Jan 7146 Jan 8575"},
	} {
		var labels []string
		for _, tk := range timeTicks(tc.from, tc.to, time.UTC, 7) {
			if tk.at < 0 || tk.at > 1 {
				t.Errorf("tick %q at %v outside the axis", tk.label, tk.at)
			}
			labels = append(labels, tk.label)
		}
		if got := strings.Join(labels, " "); got != tc.want {
			t.Errorf("timeTicks(%v, %v) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestChartID(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"traffic", "traffic"}, {"9lives", "c-9lives"}, {`a"b c`, "a-b-c"}, {"", "chart-"},
	} {
		got := chartID(tc.id, "line", "T")
		if tc.id == "" {
			if !strings.HasPrefix(got, tc.want) || got != chartID("", "line", "T") || got == chartID("", "line", "U") {
				t.Errorf("derived id %q not stable per title", got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("chartID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// FuzzCharts renders every chart type from arbitrary bytes: values from raw
// float bits (NaN, ±Inf, subnormals), times anywhere in the representable
// range, labels of any bytes. The output must always be well-formed and
// contain only chart elements.
func FuzzCharts(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\xf8\x7f"), "Dropbox", int64(0), uint8(3))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xef\x7f\x00\x00\x00\x00\x00\x00\xf0\xff"), `<script>"&'`, int64(-1<<62), uint8(200))
	f.Add(bytes.Repeat([]byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 1}, 40), "a\x00b", int64(1<<40), uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, label string, start int64, stepSel uint8) {
		var vals []float64
		for i := 0; i+8 <= len(raw) && len(vals) < 3000; i += 8 {
			var bits uint64
			for k := 0; k < 8; k++ {
				bits |= uint64(raw[i+k]) << (8 * k)
			}
			vals = append(vals, math.Float64frombits(bits))
		}
		base := time.Unix(start%(1<<35), 0).UTC()
		step := time.Duration(stepSel) * time.Minute
		pts := make([]Point, len(vals))
		buckets := make([]Bucket, len(vals))
		items := make([]Item, len(vals))
		for i, v := range vals {
			pts[i] = Point{T: base.Add(time.Duration(i) * step), V: v}
			buckets[i] = Bucket{T: pts[i].T, Values: []float64{v, -v, v * 3}}
			items[i] = Item{Label: fmt.Sprint(label, i), Value: v}
		}
		for _, c := range []renderer{
			Line{Title: label, Series: []Series{{Name: label, Points: pts}, {Name: "b", Points: pts[:len(pts)/2]}}, Area: stepSel%2 == 0, Unit: Unit(stepSel % 2)},
			Bars{Title: label, Layers: []Layer{{Name: label}, {Name: "x"}, {Name: "y"}}, Buckets: buckets, MaxBars: 50},
			Ranking{Title: label, Items: items},
			Sparkline{Label: label, Values: vals},
		} {
			var b bytes.Buffer
			if err := c.Render(&b); err != nil {
				t.Fatal(err)
			}
			checkWellFormed(t, b.Bytes())
		}
	})
}
