package app

import "syscall"

// memoryBacked reports whether dir is on tmpfs or ramfs, where a file's
// bytes are memory (and count against a container's memory limit).
func memoryBacked(dir string) bool {
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == tmpfsMagic || st.Type == ramfsMagic
}
