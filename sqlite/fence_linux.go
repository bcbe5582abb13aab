package sqlite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// walWriteLock is the byte of the -shm file that SQLite's WAL writer locks.
const walWriteLock = 120

// writeLockHolders lists the processes other than this one that hold a
// POSIX write lock covering the WAL write-lock byte of the -shm file.
func writeLockHolders(shm string) ([]int, error) {
	fi, err := os.Stat(shm)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, errors.New("no inode")
	}
	major, minor := (st.Dev>>8)&0xfff|(st.Dev>>32)&^0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	self := os.Getpid()
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: POSIX  ADVISORY  WRITE 1234 fe:00:9978033 120 120"
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[1] != "POSIX" || fs[3] != "WRITE" || fs[5] != want {
			continue
		}
		pid, err1 := strconv.Atoi(fs[4])
		start, err2 := strconv.ParseInt(fs[6], 10, 64)
		end := int64(1 << 62)
		if fs[7] != "EOF" {
			end, _ = strconv.ParseInt(fs[7], 10, 64)
		}
		if err1 != nil || err2 != nil || pid == self || start > walWriteLock || end < walWriteLock {
			continue
		}
		out = append(out, pid)
	}
	return out, sc.Err()
}

// fenceIfStopped kills pid if it is stopped (state T or t).
func fenceIfStopped(pid int) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return errors.New("unreadable /proc stat")
	}
	switch b[i+2] {
	case 'T', 't':
		return syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}
