package soak

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Leak is one plaintext pod packet seen on the underlay.
type Leak struct {
	At       time.Time
	What     string // "src > dst"
	Src, Dst int    // the nodes whose pod CIDRs hold the addresses (0: none)
}

// leaks lists the plaintext pod packets of a pcap file with their times,
// so each can be laid against the faults running then. netcluster's
// CountPcap stays the authority for the totals; this only attributes.
func leaks(path string, podNets []netip.Prefix) ([]Leak, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	nano := false
	switch binary.LittleEndian.Uint32(gh[:4]) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		nano = true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("pcap: bad magic %x", gh[:4])
	}
	var out []Leak
	var rh [16]byte
	buf := make([]byte, 1<<18)
	for {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("pcap record: %w", err)
		}
		sec, frac := bo.Uint32(rh[0:4]), bo.Uint32(rh[4:8])
		incl := bo.Uint32(rh[8:12])
		if incl > uint32(len(buf)) {
			return out, fmt.Errorf("pcap record of %d bytes", incl)
		}
		pkt := buf[:incl]
		if _, err := io.ReadFull(r, pkt); err != nil {
			return out, fmt.Errorf("pcap record body: %w", err)
		}
		src, dst, ok := ethIP(pkt)
		if !ok || !(inNets(src, podNets) || inNets(dst, podNets)) {
			continue
		}
		ns := int64(frac)
		if !nano {
			ns *= 1000
		}
		out = append(out, Leak{At: time.Unix(int64(sec), ns), What: src.String() + " > " + dst.String(), Src: podNode(src), Dst: podNode(dst)})
	}
}

// ethIP returns the addresses of an Ethernet frame carrying IPv4 or IPv6.
func ethIP(b []byte) (src, dst netip.Addr, ok bool) {
	if len(b) < 14 {
		return
	}
	etype := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	switch {
	case etype == 0x0800 && len(b) >= 20:
		return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), true
	case etype == 0x86dd && len(b) >= 40:
		return netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), true
	}
	return
}

func inNets(a netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

var droppedRE = regexp.MustCompile(`(\d+) packets? dropped by kernel`)

// kernelDrops reads tcpdump's closing statistics from its log: a capture
// that lost packets cannot prove their absence.
func kernelDrops(logPath string) (int, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, err
	}
	m := droppedRE.FindStringSubmatch(string(b))
	if m == nil {
		return 0, fmt.Errorf("no \"dropped by kernel\" line in %s: %s", logPath, strings.TrimSpace(tail(string(b), 5)))
	}
	return strconv.Atoi(m[1])
}

// podNode is the node index netcluster encodes in a pod address:
// 10.244.<node>.x or fd00:10:244:<node>::x (0 when a is no pod's).
func podNode(a netip.Addr) int {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		if b[0] == 10 && b[1] == 244 {
			return int(b[2])
		}
		return 0
	}
	b := a.As16()
	if netip.MustParsePrefix("fd00:10:244::/48").Contains(a) {
		return int(binary.BigEndian.Uint16(b[6:8]))
	}
	return 0
}
