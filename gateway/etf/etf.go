package etf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// ETF tags (erlang.org/doc/apps/erts/erl_ext_dist.html).
const (
	etfVersion        = 131
	etfNewFloat       = 70
	etfSmallInteger   = 97
	etfInteger        = 98
	etfFloat          = 99
	etfAtom           = 100
	etfSmallTuple     = 104
	etfLargeTuple     = 105
	etfNil            = 106
	etfString         = 107
	etfList           = 108
	etfBinary         = 109
	etfSmallBig       = 110
	etfLargeBig       = 111
	etfSmallAtom      = 115
	etfMap            = 116
	etfAtomUTF8       = 118
	etfSmallAtomUTF8  = 119
	etfMaxDepth       = 32
	etfMaxBigIntBytes = 8
)

var (
	errETFDecode   = errors.New("etf: invalid term")
	errETFAtomKey  = errors.New("etf: map keys must be strings")
	errETFTooDeep  = errors.New("etf: nested too deep")
	errJSONToETF   = errors.New("etf: payload is not JSON")
	atomNil        = []byte{etfSmallAtom, 3, 'n', 'i', 'l'}
	atomTrue       = []byte{etfSmallAtom, 4, 't', 'r', 'u', 'e'}
	atomFalse      = []byte{etfSmallAtom, 5, 'f', 'a', 'l', 's', 'e'}
	errETFTrailing = errors.New("etf: trailing bytes after the term")
)

// Encode appends to dst the ETF term of the JSON value src, as the server sends
// it: map keys as atoms.
func Encode(dst, src []byte) ([]byte, error) { return encode(dst, src, false) }

// EncodeStringKeys is Encode with map keys as binaries, as a client must send
// them.
func EncodeStringKeys(dst, src []byte) ([]byte, error) { return encode(dst, src, true) }

func encode(dst, src []byte, binaryKeys bool) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	dst = append(dst, etfVersion)
	tok, err := dec.Token()
	if err != nil {
		return nil, errJSONToETF
	}
	e := encoder{dec: dec, binaryKeys: binaryKeys}
	if dst, err = e.value(dst, tok, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errJSONToETF
	}
	return dst, nil
}

type encoder struct {
	dec        *json.Decoder
	binaryKeys bool
}

func (e *encoder) value(dst []byte, tok json.Token, depth int) ([]byte, error) {
	dec := e.dec
	if depth > etfMaxDepth*2 {
		return nil, errETFTooDeep
	}
	switch v := tok.(type) {
	case nil:
		return append(dst, atomNil...), nil
	case bool:
		if v {
			return append(dst, atomTrue...), nil
		}
		return append(dst, atomFalse...), nil
	case string:
		return etfBinaryOf(dst, v), nil
	case json.Number:
		return etfNumber(dst, v)
	case json.Delim:
		switch v {
		case '{':
			at := len(dst)
			dst = append(dst, etfMap, 0, 0, 0, 0)
			n := uint32(0)
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, errJSONToETF
				}
				key, _ := k.(string)
				if e.binaryKeys {
					dst = etfBinaryOf(dst, key)
				} else {
					dst = etfKey(dst, key)
				}
				val, err := dec.Token()
				if err != nil {
					return nil, errJSONToETF
				}
				if dst, err = e.value(dst, val, depth+1); err != nil {
					return nil, err
				}
				n++
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, errJSONToETF
			}
			binary.BigEndian.PutUint32(dst[at+1:], n)
			return dst, nil
		case '[':
			at := len(dst)
			dst = append(dst, etfList, 0, 0, 0, 0)
			n := uint32(0)
			for dec.More() {
				val, err := dec.Token()
				if err != nil {
					return nil, errJSONToETF
				}
				if dst, err = e.value(dst, val, depth+1); err != nil {
					return nil, err
				}
				n++
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, errJSONToETF
			}
			if n == 0 {
				return append(dst[:at], etfNil), nil // [] is the empty list
			}
			binary.BigEndian.PutUint32(dst[at+1:], n)
			return append(dst, etfNil), nil // a proper list ends with the empty list
		}
	}
	return nil, errJSONToETF
}

// etfKey appends a map key: an atom when it is one erlpack can read (Latin-1, up
// to 255 bytes: ours are ASCII field names), else a binary.
func etfKey(dst []byte, key string) []byte {
	if len(key) > 0 && len(key) < 256 && isASCII(key) {
		dst = append(dst, etfSmallAtom, byte(len(key)))
		return append(dst, key...)
	}
	return etfBinaryOf(dst, key)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func etfBinaryOf(dst []byte, s string) []byte {
	dst = append(dst, etfBinary)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func etfNumber(dst []byte, n json.Number) ([]byte, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		switch {
		case i >= 0 && i <= math.MaxUint8:
			return append(dst, etfSmallInteger, byte(i)), nil
		case i >= math.MinInt32 && i <= math.MaxInt32:
			dst = append(dst, etfInteger)
			return binary.BigEndian.AppendUint32(dst, uint32(int32(i))), nil
		}
		sign, mag := byte(0), uint64(i)
		if i < 0 {
			sign, mag = 1, uint64(-i) // -MinInt64 wraps to its own magnitude as uint64
		}
		return etfBig(dst, sign, mag), nil
	}
	if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
		return etfBig(dst, 0, u), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, errJSONToETF
	}
	dst = append(dst, etfNewFloat)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f)), nil
}

// etfBig appends a SMALL_BIG_EXT: sign, then the magnitude's bytes, least
// significant first.
func etfBig(dst []byte, sign byte, mag uint64) []byte {
	var digits [8]byte
	n := 0
	for mag > 0 {
		digits[n] = byte(mag)
		mag >>= 8
		n++
	}
	dst = append(dst, etfSmallBig, byte(n), sign)
	return append(dst, digits[:n]...)
}

// DecodeClient reads one ETF term from a client and returns the JSON value it
// stands for. Map keys must be binaries or byte strings: Discord refuses atom
// keys from clients (close 4002).
func DecodeClient(src []byte) ([]byte, error) { return decode(src, false) }

// Decode is DecodeClient that also takes atom keys: what a client reads of the
// server's terms.
func Decode(src []byte) ([]byte, error) { return decode(src, true) }

func decode(src []byte, atomKeys bool) ([]byte, error) {
	if len(src) < 2 || src[0] != etfVersion {
		return nil, errETFDecode
	}
	d := etfDecoder{src: src[1:], atomKeys: atomKeys}
	out, err := d.value(make([]byte, 0, 2*len(src)), 0)
	if err != nil {
		return nil, err
	}
	if len(d.src) != 0 {
		return nil, errETFTrailing
	}
	return out, nil
}

type etfDecoder struct {
	src      []byte
	atomKeys bool
}

func (d *etfDecoder) take(n int) ([]byte, bool) {
	if n < 0 || n > len(d.src) {
		return nil, false
	}
	b := d.src[:n]
	d.src = d.src[n:]
	return b, true
}

func (d *etfDecoder) u8() (int, bool) {
	b, ok := d.take(1)
	if !ok {
		return 0, false
	}
	return int(b[0]), true
}

func (d *etfDecoder) u16() (int, bool) {
	b, ok := d.take(2)
	if !ok {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(b)), true
}

func (d *etfDecoder) u32() (int, bool) {
	b, ok := d.take(4)
	if !ok {
		return 0, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(d.src)) {
		return 0, false // every element takes at least a byte: bounds any count
	}
	return int(n), true
}

func (d *etfDecoder) value(dst []byte, depth int) ([]byte, error) {
	if depth > etfMaxDepth {
		return nil, errETFTooDeep
	}
	tag, ok := d.u8()
	if !ok {
		return nil, errETFDecode
	}
	switch tag {
	case etfSmallInteger:
		v, ok := d.u8()
		if !ok {
			return nil, errETFDecode
		}
		return strconv.AppendInt(dst, int64(v), 10), nil
	case etfInteger:
		b, ok := d.take(4)
		if !ok {
			return nil, errETFDecode
		}
		return strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(b))), 10), nil
	case etfSmallBig, etfLargeBig:
		var n int
		if tag == etfSmallBig {
			n, ok = d.u8()
		} else {
			n, ok = d.u32()
		}
		if !ok || n > etfMaxBigIntBytes {
			return nil, errETFDecode
		}
		sign, ok := d.u8()
		digits, ok2 := d.take(n)
		if !ok || !ok2 || sign > 1 {
			return nil, errETFDecode
		}
		var mag uint64
		for i := n - 1; i >= 0; i-- {
			mag = mag<<8 | uint64(digits[i])
		}
		if sign == 1 && mag != 0 {
			dst = append(dst, '-')
		}
		return strconv.AppendUint(dst, mag, 10), nil
	case etfNewFloat:
		b, ok := d.take(8)
		if !ok {
			return nil, errETFDecode
		}
		return appendJSONFloat(dst, math.Float64frombits(binary.BigEndian.Uint64(b)))
	case etfFloat:
		b, ok := d.take(31)
		if !ok {
			return nil, errETFDecode
		}
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(bytes.TrimRight(b, "\x00"))), 64)
		if err != nil {
			return nil, errETFDecode
		}
		return appendJSONFloat(dst, f)
	case etfAtom, etfSmallAtom, etfAtomUTF8, etfSmallAtomUTF8:
		name, err := d.atom(tag)
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "nil", "null":
			return append(dst, "null"...), nil
		case "true", "false":
			return append(dst, name...), nil
		}
		return appendJSONString(dst, name, tag == etfAtom || tag == etfSmallAtom)
	case etfBinary:
		n, ok := d.u32()
		b, ok2 := d.take(n)
		if !ok || !ok2 {
			return nil, errETFDecode
		}
		return appendJSONString(dst, b, false)
	case etfString: // a list of bytes: read as the string of those characters
		n, ok := d.u16()
		b, ok2 := d.take(n)
		if !ok || !ok2 {
			return nil, errETFDecode
		}
		return appendJSONString(dst, b, true)
	case etfNil:
		return append(dst, "[]"...), nil
	case etfList, etfSmallTuple, etfLargeTuple:
		var n int
		switch tag {
		case etfSmallTuple:
			n, ok = d.u8()
		default:
			n, ok = d.u32()
		}
		if !ok {
			return nil, errETFDecode
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = d.value(dst, depth+1); err != nil {
				return nil, err
			}
		}
		if tag == etfList {
			// Only proper lists: the tail is the empty list.
			if t, ok := d.u8(); !ok || t != etfNil {
				return nil, errETFDecode
			}
		}
		return append(dst, ']'), nil
	case etfMap:
		n, ok := d.u32()
		if !ok {
			return nil, errETFDecode
		}
		dst = append(dst, '{')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = d.key(dst); err != nil {
				return nil, err
			}
			dst = append(dst, ':')
			if dst, err = d.value(dst, depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, errETFDecode
}

// key reads a map key as a JSON string: a binary or a byte string, or with
// atomKeys an atom.
func (d *etfDecoder) key(dst []byte) ([]byte, error) {
	tag, ok := d.u8()
	if !ok {
		return nil, errETFDecode
	}
	switch tag {
	case etfBinary:
		n, ok := d.u32()
		b, ok2 := d.take(n)
		if !ok || !ok2 {
			return nil, errETFDecode
		}
		return appendJSONString(dst, b, false)
	case etfString:
		n, ok := d.u16()
		b, ok2 := d.take(n)
		if !ok || !ok2 {
			return nil, errETFDecode
		}
		return appendJSONString(dst, b, true)
	case etfAtom, etfSmallAtom, etfAtomUTF8, etfSmallAtomUTF8:
		if !d.atomKeys {
			return nil, errETFAtomKey
		}
		name, err := d.atom(tag)
		if err != nil {
			return nil, err
		}
		return appendJSONString(dst, name, tag == etfAtom || tag == etfSmallAtom)
	}
	return nil, errETFDecode
}

func (d *etfDecoder) atom(tag int) ([]byte, error) {
	var n int
	var ok bool
	if tag == etfSmallAtom || tag == etfSmallAtomUTF8 {
		n, ok = d.u8()
	} else {
		n, ok = d.u16()
	}
	b, ok2 := d.take(n)
	if !ok || !ok2 {
		return nil, errETFDecode
	}
	return b, nil
}

// appendJSONString appends s as a JSON string: UTF-8 text, or with latin1 each
// byte a character (Latin-1 atoms and byte strings). Invalid UTF-8 is refused.
func appendJSONString(dst, s []byte, latin1 bool) ([]byte, error) {
	if latin1 {
		r := make([]rune, len(s))
		for i, c := range s {
			r[i] = rune(c)
		}
		s = []byte(string(r))
	} else if !utf8.Valid(s) {
		return nil, errETFDecode
	}
	b, err := json.Marshal(string(s))
	if err != nil {
		return nil, errETFDecode
	}
	return append(dst, b...), nil
}

func appendJSONFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errETFDecode
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64), nil
}
