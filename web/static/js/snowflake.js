// Snowflakes are decimal strings on the wire. Comparing them as strings of equal
// length orders them by time without BigInt.

/** Compares two snowflake strings: negative, zero or positive. */
export function compareIds(a, b) {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The larger of two snowflakes, either of which may be null. */
export function maxId(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

const discordEpoch = 1420070400000n;

/** The creation time of a snowflake, in milliseconds since 1970. */
export function idTime(id) {
  try {
    return Number((BigInt(id) >> 22n) + discordEpoch);
  } catch {
    return 0;
  }
}

/**
 * Binary search in an array sorted ascending by key(item): the index of id, or
 * -(insertion point) - 1 when absent.
 */
export function searchById(items, id, key = (m) => m.id) {
  let lo = 0;
  let hi = items.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = compareIds(key(items[mid]), id);
    if (c < 0) lo = mid + 1;
    else if (c > 0) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

let nonceCounter = 0;
/** A nonce for an outgoing message: unique in this page, short (Discord allows 25). */
export function newNonce() {
  nonceCounter = (nonceCounter + 1) % 1000;
  return String(Date.now()) + String(nonceCounter).padStart(3, '0');
}
