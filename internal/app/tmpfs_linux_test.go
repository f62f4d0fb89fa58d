package app

import (
	"os"
	"testing"
)

func TestMemoryBackedDirectories(t *testing.T) {
	for _, tt := range []struct {
		dir  string
		want bool
	}{
		{"/dev/shm", true}, // tmpfs on every Linux with glibc's shm_open
		{"/proc", false},
		{"/does/not/exist", false},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			if _, err := os.Stat(tt.dir); err != nil && tt.want {
				t.Skipf("%s: %v", tt.dir, err)
			}
			if got := memoryBacked(tt.dir); got != tt.want {
				t.Errorf("memoryBacked(%s) = %v, want %v", tt.dir, got, tt.want)
			}
		})
	}
}
