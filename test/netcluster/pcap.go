package netcluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Counts summarises a capture on the underlay.
type Counts struct {
	Total int
	// Plaintext counts IP packets whose source or destination lies in a pod
	// network: on the underlay every such packet is a leak, whatever its
	// protocol.
	Plaintext int
	// WireGuard counts UDP datagrams that look like WireGuard messages.
	WireGuard int
	// IPv4 and IPv6 count IP packets by family; UDPDst4 counts the IPv4
	// UDP datagrams alone by destination port, and IPv4Samples describes
	// the first IPv4 packets.
	IPv4, IPv6  int
	UDPDst4     map[uint16]int
	IPv4Samples []string
	// UDPDst counts UDP datagrams by destination port (first fragments
	// only: later ones carry no UDP header).
	UDPDst map[uint16]int
	// PlaintextSamples holds the first few leaks as "src > dst proto".
	PlaintextSamples []string
}

func (c Counts) String() string {
	return fmt.Sprintf("total %d, plaintext %d, wireguard %d, samples %v", c.Total, c.Plaintext, c.WireGuard, c.PlaintextSamples)
}

const maxSamples = 8

// pcap link types this parser understands.
const (
	linkEthernet = 1
	linkRaw      = 101
)

// CountPcap reads a classic pcap stream (micro- or nanosecond timestamps,
// either byte order; Ethernet or raw IP link type) and counts its packets.
// Truncated packets are classified as far as their captured bytes allow.
func CountPcap(r io.Reader, podNets []netip.Prefix) (Counts, error) {
	var c Counts
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return c, fmt.Errorf("pcap global header: %w", err)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(gh[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return c, fmt.Errorf("pcap: bad magic %x", gh[:4])
	}
	link := bo.Uint32(gh[20:24]) & 0x0fffffff // upper bits carry FCS info
	if link != linkEthernet && link != linkRaw {
		return c, fmt.Errorf("pcap: unsupported link type %d", link)
	}

	var rh [16]byte
	buf := make([]byte, 65536)
	for {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return c, nil
			}
			// A capture killed mid-write leaves a partial record; what was
			// read so far is still a valid answer, but say so.
			return c, fmt.Errorf("pcap record %d header: %w", c.Total+1, err)
		}
		incl := bo.Uint32(rh[8:12])
		if incl > 262144 { // libpcap's largest snapshot length
			return c, fmt.Errorf("pcap record %d: implausible length %d", c.Total+1, incl)
		}
		if cap(buf) < int(incl) {
			buf = make([]byte, incl)
		}
		pkt := buf[:incl]
		if _, err := io.ReadFull(r, pkt); err != nil {
			return c, fmt.Errorf("pcap record %d body: %w", c.Total+1, err)
		}
		c.Total++
		if link == linkEthernet {
			c.addEthernet(pkt, podNets)
		} else {
			c.addIP(pkt, podNets)
		}
	}
}

func (c *Counts) addEthernet(b []byte, podNets []netip.Prefix) {
	if len(b) < 14 {
		return
	}
	etype := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	for (etype == 0x8100 || etype == 0x88a8) && len(b) >= 4 { // VLAN tags
		etype = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	if etype == 0x0800 || etype == 0x86dd {
		c.addIP(b, podNets)
	}
}

func (c *Counts) addIP(b []byte, podNets []netip.Prefix) {
	src, dst, proto, l4, l4whole, ok := parseIP(b)
	if !ok {
		return
	}
	if src.Is4() {
		c.IPv4++
		if len(c.IPv4Samples) < maxSamples {
			c.IPv4Samples = append(c.IPv4Samples, fmt.Sprintf("%s > %s %s", src, dst, protoName(proto)))
		}
	} else {
		c.IPv6++
	}
	if proto == 17 && l4whole && len(l4) >= 4 {
		if c.UDPDst == nil {
			c.UDPDst = map[uint16]int{}
		}
		c.UDPDst[binary.BigEndian.Uint16(l4[2:4])]++
		if src.Is4() {
			if c.UDPDst4 == nil {
				c.UDPDst4 = map[uint16]int{}
			}
			c.UDPDst4[binary.BigEndian.Uint16(l4[2:4])]++
		}
	}
	if inAny(src, podNets) || inAny(dst, podNets) {
		c.Plaintext++
		if len(c.PlaintextSamples) < maxSamples {
			c.PlaintextSamples = append(c.PlaintextSamples, fmt.Sprintf("%s > %s %s", src, dst, protoName(proto)))
		}
	}
	if proto == 17 && l4whole && isWireGuard(l4) {
		c.WireGuard++
	}
}

// parseIP returns the addresses, the transport protocol and the captured
// transport bytes; whole is false for non-first fragments, whose bytes are
// not a transport header.
func parseIP(b []byte) (src, dst netip.Addr, proto uint8, l4 []byte, whole, ok bool) {
	if len(b) < 1 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if len(b) < 20 || ihl < 20 {
			return
		}
		src = netip.AddrFrom4([4]byte(b[12:16]))
		dst = netip.AddrFrom4([4]byte(b[16:20]))
		proto = b[9]
		whole = binary.BigEndian.Uint16(b[6:8])&0x1fff == 0
		if len(b) >= ihl {
			l4 = b[ihl:]
		}
		return src, dst, proto, l4, whole, true
	case 6:
		if len(b) < 40 {
			return
		}
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
		proto, l4, whole = skipV6Ext(b[6], b[40:])
		return src, dst, proto, l4, whole, true
	}
	return
}

// skipV6Ext walks the extension headers that may precede a transport header.
func skipV6Ext(next uint8, b []byte) (uint8, []byte, bool) {
	whole := true
	for {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 8 {
				return next, nil, whole
			}
			n := (int(b[1]) + 1) * 8
			next = b[0]
			if len(b) < n {
				return next, nil, whole
			}
			b = b[n:]
		case 44: // fragment
			if len(b) < 8 {
				return next, nil, whole
			}
			next = b[0]
			whole = whole && binary.BigEndian.Uint16(b[2:4])&0xfff8 == 0
			b = b[8:]
		default:
			return next, b, whole
		}
	}
}

// isWireGuard checks a UDP segment for a WireGuard message header: a type of
// 1..4, three reserved zero bytes, and the size that type requires. The size
// comes from the UDP length field, since the capture may be truncated.
func isWireGuard(udp []byte) bool {
	if len(udp) < 12 {
		return false
	}
	n := int(binary.BigEndian.Uint16(udp[4:6])) - 8
	p := udp[8:]
	if p[1] != 0 || p[2] != 0 || p[3] != 0 {
		return false
	}
	switch p[0] {
	case 1: // handshake initiation
		return n == 148
	case 2: // handshake response
		return n == 92
	case 3: // cookie reply
		return n == 64
	case 4: // transport data: header, counter, at least the AEAD tag
		return n >= 32
	}
	return false
}

func inAny(a netip.Addr, nets []netip.Prefix) bool {
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmp6"
	}
	return fmt.Sprintf("proto-%d", p)
}
