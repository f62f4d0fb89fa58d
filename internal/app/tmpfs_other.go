//go:build !linux

package app

// memoryBacked is only known on Linux.
func memoryBacked(string) bool { return false }
