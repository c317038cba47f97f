// Package etf converts between JSON and Erlang's External Term Format as
// Discord's gateway speaks it with encoding=etf (erlpack is Discord's own
// implementation, and what libraries use):
//
//   - The server sends each payload as one term (Encode): objects as maps whose
//     keys are atoms (Latin-1 atoms, which every decoder reads, erlpack included;
//     a key that cannot be one goes as a binary), strings as binaries, null, true
//     and false as the atoms nil, true and false, integers as small integers,
//     integers or small bigs, other numbers as 64-bit floats, arrays as proper
//     lists. Snowflakes stay strings, which Discord's documentation allows
//     ("64-bit integers or strings").
//   - A client sends terms with string keys (binaries); DecodeClient refuses atom
//     keys (Discord closes with 4002 for them) and anything that is not a term a
//     JSON value maps to. Integers up to 64 bits are read, so a client may send
//     snowflakes as integers.
//
// Both directions go through JSON so that the gateway's protocol code reads and
// writes one shape: each payload's JSON is converted once and its bytes shared,
// and a client's term is read as the JSON it stands for. Decoding is bounded:
// nesting depth, counts no larger than the bytes left, big integers of at most 8
// bytes. Standard library only; testenv's gateway clients use it too.
package etf
