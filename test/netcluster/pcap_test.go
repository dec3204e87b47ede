package netcluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

var testPodNets = []netip.Prefix{
	netip.MustParsePrefix("10.244.0.0/16"),
	netip.MustParsePrefix("fd00:10:244::/48"),
}

// pcapFile assembles a pcap stream in the given byte order and timestamp
// resolution.
func pcapFile(bo binary.ByteOrder, nano bool, link uint32, pkts ...[]byte) []byte {
	var b bytes.Buffer
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	for _, v := range []any{magic, uint16(2), uint16(4), int32(0), uint32(0), uint32(256), link} {
		_ = binary.Write(&b, bo, v)
	}
	for i, p := range pkts {
		_ = binary.Write(&b, bo, []uint32{uint32(1700000000 + i), 42, uint32(len(p)), uint32(len(p))})
		b.Write(p)
	}
	return b.Bytes()
}

func ether(etype uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 1})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(b[12:], etype)
	return append(b, payload...)
}

func ipv4(src, dst string, proto uint8, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)))
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, l4...)
}

func ipv6(src, dst string, next uint8, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6] = next
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
}

func udp(payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], 51820)
	binary.BigEndian.PutUint16(b[2:], 51820)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func wgMsg(typ byte, size int) []byte {
	b := make([]byte, size)
	b[0] = typ
	for i := 4; i < size; i++ {
		b[i] = byte(i * 7)
	}
	return b
}

var icmpEcho = []byte{8, 0, 0, 0, 0, 1, 0, 1, 'p', 'i', 'n', 'g'}

func arp() []byte {
	b := make([]byte, 28)
	copy(b, []byte{0, 1, 8, 0, 6, 4, 0, 1})
	return ether(0x0806, b)
}

func TestCountPcap(t *testing.T) {
	const nodeA, nodeB = "192.168.77.11", "192.168.77.12"
	pkts := [][]byte{
		// encrypted: handshake, response, cookie, data, keepalive
		ether(0x0800, ipv4(nodeA, nodeB, 17, udp(wgMsg(1, 148)))),
		ether(0x0800, ipv4(nodeB, nodeA, 17, udp(wgMsg(2, 92)))),
		ether(0x0800, ipv4(nodeB, nodeA, 17, udp(wgMsg(3, 64)))),
		ether(0x0800, ipv4(nodeA, nodeB, 17, udp(wgMsg(4, 32+96)))),
		ether(0x0800, ipv4(nodeA, nodeB, 17, udp(wgMsg(4, 32)))),
		// WireGuard over IPv6 underlay
		ether(0x86dd, ipv6("fd00:77::11", "fd00:77::12", 17, udp(wgMsg(4, 64)))),
		// plaintext leaks: v4 ICMP between pods, v4 TCP from a pod to a node,
		// v6 ICMP between pods, and a pod packet inside a VLAN tag
		ether(0x0800, ipv4("10.244.1.10", "10.244.2.10", 1, icmpEcho)),
		ether(0x0800, ipv4(nodeA, "10.244.2.10", 6, make([]byte, 20))),
		ether(0x86dd, ipv6("fd00:10:244:1::10", "fd00:10:244:2::10", 58, icmpEcho)),
		ether(0x8100, append([]byte{0, 5, 0x08, 0x00}, ipv4("10.244.3.10", nodeA, 17, udp([]byte("dns")))...)),
		// neither: not WireGuard-shaped UDP between nodes, node ICMP, ARP
		ether(0x0800, ipv4(nodeA, nodeB, 17, udp(wgMsg(1, 100)))),                                   // wrong size for type 1
		ether(0x0800, ipv4(nodeA, nodeB, 17, udp(append([]byte{4, 1, 0, 0}, make([]byte, 60)...)))), // reserved not zero
		ether(0x0800, ipv4(nodeA, nodeB, 17, udp(wgMsg(5, 64)))),                                    // unknown type
		ether(0x0800, ipv4(nodeA, nodeB, 1, icmpEcho)),
		arp(),
	}
	want := Counts{Total: len(pkts), Plaintext: 4, WireGuard: 6}
	wantSamples := []string{
		"10.244.1.10 > 10.244.2.10 icmp",
		"192.168.77.11 > 10.244.2.10 tcp",
		"fd00:10:244:1::10 > fd00:10:244:2::10 icmp6",
		"10.244.3.10 > 192.168.77.11 udp",
	}
	for _, tc := range []struct {
		name string
		bo   binary.ByteOrder
		nano bool
	}{
		{"le-micro", binary.LittleEndian, false},
		{"le-nano", binary.LittleEndian, true},
		{"be-micro", binary.BigEndian, false},
		{"be-nano", binary.BigEndian, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CountPcap(bytes.NewReader(pcapFile(tc.bo, tc.nano, linkEthernet, pkts...)), testPodNets)
			if err != nil {
				t.Fatal(err)
			}
			// Every UDP datagram above goes to port 51820.
			if got.IPv4 != 12 || got.IPv6 != 2 || len(got.UDPDst) != 1 || got.UDPDst[51820] != 10 {
				t.Errorf("by family %d/%d, UDP by destination port %v; want 12/2, 10 to 51820", got.IPv4, got.IPv6, got.UDPDst)
			}
			if got.Total != want.Total || got.Plaintext != want.Plaintext || got.WireGuard != want.WireGuard {
				t.Errorf("got %v, want %v", got, want)
			}
			if strings.Join(got.PlaintextSamples, "|") != strings.Join(wantSamples, "|") {
				t.Errorf("samples %q, want %q", got.PlaintextSamples, wantSamples)
			}
		})
	}
}

// A capture snapped at 256 bytes still recognises large WireGuard data
// messages: the size check uses the UDP length, not the captured length.
func TestCountPcapTruncated(t *testing.T) {
	full := ether(0x0800, ipv4("192.168.77.11", "192.168.77.12", 17, udp(wgMsg(4, 1400))))
	leak := ether(0x0800, ipv4("10.244.1.10", "10.244.2.10", 6, make([]byte, 1400)))
	var b bytes.Buffer
	b.Write(pcapFile(binary.LittleEndian, false, linkEthernet))
	for _, p := range [][]byte{full, leak} {
		_ = binary.Write(&b, binary.LittleEndian, []uint32{1, 0, 256, uint32(len(p))})
		b.Write(p[:256])
	}
	got, err := CountPcap(&b, testPodNets)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total != 2 || got.WireGuard != 1 || got.Plaintext != 1 {
		t.Errorf("got %v", got)
	}
}

func TestCountPcapFragments(t *testing.T) {
	// A non-first fragment's payload is not a UDP header, even if it looks
	// like one carrying WireGuard.
	frag := ipv4("192.168.77.11", "192.168.77.12", 17, udp(wgMsg(4, 64)))
	binary.BigEndian.PutUint16(frag[6:], 185) // offset 1480 bytes
	got, err := CountPcap(bytes.NewReader(pcapFile(binary.LittleEndian, false, linkEthernet, ether(0x0800, frag))), testPodNets)
	if err != nil {
		t.Fatal(err)
	}
	if got.WireGuard != 0 || got.Total != 1 {
		t.Errorf("got %v", got)
	}
}

func TestCountPcapRawIP(t *testing.T) {
	got, err := CountPcap(bytes.NewReader(pcapFile(binary.LittleEndian, false, linkRaw,
		ipv4("10.244.1.10", "10.244.2.10", 1, icmpEcho))), testPodNets)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total != 1 || got.Plaintext != 1 {
		t.Errorf("got %v", got)
	}
}

func TestCountPcapErrors(t *testing.T) {
	good := pcapFile(binary.LittleEndian, false, linkEthernet, arp(), arp())
	for _, tc := range []struct {
		name  string
		in    []byte
		total int
		is    error
	}{
		{"empty", nil, 0, io.EOF},
		{"bad magic", append([]byte{1, 2, 3, 4}, good[4:]...), 0, nil},
		{"unsupported link", pcapFile(binary.LittleEndian, false, 113), 0, nil},
		{"cut in record header", good[:len(good)-len(arp())-4], 1, io.ErrUnexpectedEOF},
		{"cut in record body", good[:len(good)-3], 1, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CountPcap(bytes.NewReader(tc.in), testPodNets)
			if err == nil {
				t.Fatalf("no error, counts %v", got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if got.Total != tc.total {
				t.Errorf("total %d before the error, want %d", got.Total, tc.total)
			}
		})
	}
	// A header-only file is a valid, empty capture.
	got, err := CountPcap(bytes.NewReader(pcapFile(binary.BigEndian, true, linkEthernet)), testPodNets)
	if err != nil || got.Total != 0 {
		t.Errorf("header-only: %v, %v", got, err)
	}
}
