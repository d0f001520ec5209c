package bench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// TestMain runs the benchmarks and prints the table of everything they
// measured. When started as a helper subprocess (HOOKLINE_BENCH_CHILD set),
// it runs that helper instead.
func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(runChild(mode))
	}
	started := time.Now()
	load := loadAvg()
	code := m.Run()
	if len(rows) > 0 || len(notes) > 0 {
		printTable(os.Stdout, started, load)
	}
	os.Exit(code)
}

// row is one line of the table.
type row struct {
	order    int
	metric   string
	hookline string
	baseline string
	ratio    string
	target   string
	met      string // yes, NO, or - (informational)
}

var (
	resMu      sync.Mutex
	rows       []row
	notes      []string
	brokerKind string
)

func addRow(r row) {
	resMu.Lock()
	defer resMu.Unlock()
	rows = append(rows, r)
}

func addNote(format string, a ...any) {
	resMu.Lock()
	defer resMu.Unlock()
	notes = append(notes, fmt.Sprintf(format, a...))
}

func setBroker(kind string) {
	resMu.Lock()
	defer resMu.Unlock()
	brokerKind = kind
}

// metFlag turns a comparison into the met? column.
func metFlag(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// num formats a rate or count with thousands separators.
func num(v float64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func printTable(w io.Writer, started time.Time, loadStart string) {
	resMu.Lock()
	defer resMu.Unlock()
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].order < rows[j].order })
	kind := brokerKind
	if kind == "" {
		kind = "none started"
	}
	fmt.Fprintf(w, "\nhookline benchmarks, %s (took %s)\n", started.Format("2006-01-02 15:04 MST"), time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "machine: nproc %d, GOMAXPROCS %d, %s %s/%s, load average %s at start, %s at end\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, loadStart, loadAvg())
	fmt.Fprintf(w, "broker: %s\n", kind)
	fmt.Fprintf(w, "ratio = hookline / baseline (for latency and CPU lower is better); targets are reported, never asserted\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tmetric\thookline\tbaseline\tratio\ttarget\tmet?")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.order/10, r.metric, r.hookline, r.baseline, r.ratio, r.target, r.met)
	}
	tw.Flush()
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	fmt.Fprintln(w)
}
