package discover

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo (proc(5)).
type Mount struct {
	// Dev is the device number of the filesystem, "major:minor".
	Dev string
	// MountPoint is where it is mounted.
	MountPoint string
	// FSType is the filesystem type.
	FSType string
	// Source is the mount source ("/dev/sda1"), as the kernel shows it.
	Source string
}

// ParseMountinfo decodes /proc/self/mountinfo. Malformed lines are
// skipped: the file comes from the kernel, but a parser must not trust
// any input.
func ParseMountinfo(b []byte) []Mount {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+2 >= len(f) || !strings.Contains(f[2], ":") {
			continue
		}
		out = append(out, Mount{
			Dev:        f[2],
			MountPoint: unescapeOctal(f[4]),
			FSType:     f[sep+1],
			Source:     unescapeOctal(f[sep+2]),
		})
	}
	return out
}

// ParseSwaps decodes /proc/swaps: the swap areas' file names.
func ParseSwaps(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if strings.HasPrefix(line, "Filename") {
				continue
			}
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		out = append(out, unescapeOctal(f[0]))
	}
	return out
}

// unescapeOctal undoes the kernel's \ooo escaping of blanks in paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// usesOf finds the mounts and swap areas on the named block devices
// (name -> dev number, the disk and its partitions).
func usesOf(names map[string]string, mounts []Mount, swaps []string) []Use {
	var uses []Use
	byDev := map[string]string{}
	for n, dev := range names {
		if dev != "" {
			byDev[dev] = n
		}
	}
	for _, m := range mounts {
		n, ok := byDev[m.Dev]
		if !ok && strings.HasPrefix(m.Source, "/dev/") {
			// Filesystems such as btrfs report an anonymous dev number.
			if _, named := names[filepath.Base(m.Source)]; named {
				n, ok = filepath.Base(m.Source), true
			}
		}
		if ok {
			uses = append(uses, Use{Kind: UseMount, Block: n, What: m.MountPoint + " (" + m.FSType + ")"})
		}
	}
	for _, s := range swaps {
		if !strings.HasPrefix(s, "/dev/") {
			continue
		}
		if _, ok := names[filepath.Base(s)]; ok {
			uses = append(uses, Use{Kind: UseSwap, Block: filepath.Base(s), What: s})
		}
	}
	return uses
}
