package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseStartupPages unmaps the pages of the binary's read-only segments
// (code, constants, the function tables) from this process, and reports how
// many bytes were mapped before.
//
// Why: the binary holds the embedded broker and store, the dashboard and
// their dependencies, about 280 packages. Every package's init runs at start,
// whatever the command, and each page fault maps the 64 KiB around it, so
// by the time a command starts some 20 MB of the binary are mapped and count
// in its resident set, though `offline` never runs that code again. These
// are clean pages of the file: madvise(MADV_DONTNEED) drops them from this
// process's page tables (the page cache keeps them), and what the command
// does use is mapped again at its first touch. On the 801k-line trace it
// takes offline's peak RSS from 36-39 MB to 28-29 MB (README, benchmarks).
//
// Writable segments are left alone (DONTNEED would lose their data), and
// so is a process under a debugger: its breakpoints are private copies of
// code pages, which DONTNEED would drop.
func releaseStartupPages() (released uint64, err error) {
	if traced() {
		return 0, nil
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	for _, m := range readOnlyMappings(maps, exe) {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, errno)
		}
		released += m.end - m.start
	}
	return released, nil
}

type mapping struct{ start, end uint64 }

// readOnlyMappings returns the mappings of file path in maps (the text of
// /proc/PID/maps) that are neither writable nor shared.
func readOnlyMappings(maps []byte, path string) []mapping {
	var out []mapping
	s := bufio.NewScanner(bytes.NewReader(maps))
	for s.Scan() {
		// address perms offset dev inode pathname
		f := strings.Fields(s.Text())
		if len(f) != 6 || f[5] != path || len(f[1]) != 4 || f[1][1] != '-' || f[1][3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{start, end})
	}
	return out
}

// traced says whether a debugger is attached (TracerPid in
// /proc/self/status is not 0).
func traced() bool {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true // cannot tell: leave the pages alone
	}
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			return strings.TrimSpace(v) != "0"
		}
	}
	return true
}
