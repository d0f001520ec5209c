package embedded

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A damaged state file stopped the start with only the parse error
// ("parsing meta.json: unexpected end of JSON input"). The error now says
// what to do, and doing it lets the broker start on the same directory.
func TestDamagedStateFileSaysWhatToDo(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"seq_windows.json", "remove it"},
		{"meta.json", "write it anew"},
		{"topics.json", "restore the directory from a backup"},
	} {
		t.Run(c.file, func(t *testing.T) {
			dir := t.TempDir()
			b, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
			path := filepath.Join(dir, c.file)
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Start(Config{Addr: "127.0.0.1:0", DataDir: dir, NoSync: true})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
				t.Fatalf("start on an empty %s: %v", c.file, err)
			}
			switch c.file {
			case "seq_windows.json":
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			case "meta.json":
				if err := os.WriteFile(path, []byte(`{"version":1,"cluster_id":"kfake"}`), 0o644); err != nil {
					t.Fatal(err)
				}
			default:
				return
			}
			b, err = Start(Config{Addr: "127.0.0.1:0", DataDir: dir, NoSync: true})
			if err != nil {
				t.Fatalf("after following the advice: %v", err)
			}
			b.Close()
		})
	}
}
