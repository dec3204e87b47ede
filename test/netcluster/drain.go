package netcluster

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// markerEtherType is IEEE 802's local experimental EtherType: the marker
// frame is neither IP nor WireGuard, so it only ever counts in Total.
const markerEtherType = 0x88b5

// drainTimeout bounds how long Stop waits for tcpdump to catch up.
const drainTimeout = 5 * time.Second

// drain sends a marker frame onto br0 and waits until tcpdump has written
// it. Frames reach the capture in order, so once the marker is in the file
// every packet before it is too: stopping earlier could lose the last
// packets still queued for tcpdump, and a leak at the very end would read
// as zero.
func (cp *Capture) drain() error {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	payload := append([]byte("crosswire-capture-marker-"), nonce...)
	if err := Do(cp.c.Underlay, func() error { return sendMarker(payload) }); err != nil {
		return fmt.Errorf("capture marker: %w", err)
	}
	deadline := time.Now().Add(drainTimeout)
	for {
		data, err := os.ReadFile(cp.Path)
		if err == nil && bytes.Contains(data, payload) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("capture marker not seen within %v (tcpdump behind or stopped)", drainTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendMarker sends one broadcast frame with payload out of br0.
func sendMarker(payload []byte) error {
	br, err := net.InterfaceByName("br0")
	if err != nil {
		return err
	}
	proto := int(htons(markerEtherType))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	frame := make([]byte, 0, 14+len(payload))
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // broadcast
	frame = append(frame, br.HardwareAddr...)
	frame = binary.BigEndian.AppendUint16(frame, markerEtherType)
	frame = append(frame, payload...)
	addr := &unix.SockaddrLinklayer{Protocol: htons(markerEtherType), Ifindex: br.Index, Halen: 6}
	copy(addr.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, frame, 0, addr); err != nil {
		return fmt.Errorf("send on br0: %w", err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
