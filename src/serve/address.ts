/**
 * Which addresses a callback may reach: pure functions, no I/O. A callback destination must be a public unicast
 * address; everything the IANA special-purpose registries (RFC 6890 and its updates) mark as not globally
 * reachable is refused, and so is every IPv6 form that embeds an IPv4 address (mapped, compatible, NAT64,
 * 6to4, Teredo), since such an address can smuggle 127.0.0.1 or 10.x past a check that only looks at v6
 * prefixes. IPv6 outside 2000::/3 (global unicast) is refused outright.
 */

export type ParsedIp = { v: 4; bytes: number[] } | { v: 6; bytes: number[] };

function parseV4(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    // Dotted decimal only, no leading zeros (some resolvers read "010" as octal).
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out.push(Number(p));
  }
  return out;
}

function parseV6(s: string): number[] | undefined {
  let head = s;
  const words: number[] = [];
  // An embedded dotted quad takes the last 32 bits.
  let tailV4: number[] | undefined;
  const lastColon = head.lastIndexOf(":");
  if (head.slice(lastColon + 1).includes(".")) {
    tailV4 = parseV4(head.slice(lastColon + 1));
    if (!tailV4) return undefined;
    head = head.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const group = (h: string) => (h === "" ? [] : h.split(":"));
  const left = group(halves[0]);
  const right = halves.length === 2 ? group(halves[1]) : [];
  const total = left.length + right.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const fill = halves.length === 2 ? 8 - total : 0;
  for (const g of [...left, ...Array(fill).fill("0"), ...right]) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    words.push(parseInt(g, 16));
  }
  const bytes = words.flatMap((w) => [w >> 8, w & 255]);
  if (tailV4) bytes.splice(12, 4, ...tailV4);
  return bytes;
}

/** An IPv4 or IPv6 literal (brackets and a zone id allowed), else undefined. */
export function parseIp(raw: string): ParsedIp | undefined {
  const s = raw.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  if (!s) return undefined;
  if (!s.includes(":")) {
    const b = parseV4(s);
    return b && { v: 4, bytes: b };
  }
  const b = parseV6(s);
  return b && { v: 6, bytes: b };
}

function inV4(b: number[], net: [number, number, number, number], len: number): boolean {
  for (let i = 0; i < 32; i++) {
    if (i >= len) return true;
    const bit = (x: number) => (x >> (7 - (i % 8))) & 1;
    if (bit(b[i >> 3]) !== bit(net[i >> 3])) return false;
  }
  return true;
}

/** IPv4 ranges that are not public unicast (RFC 6890, RFC 5737, RFC 2544, RFC 6598, RFC 5771, RFC 1112). */
const V4_REFUSED: [[number, number, number, number], number, string][] = [
  [[0, 0, 0, 0], 8, "this network"],
  [[10, 0, 0, 0], 8, "private"],
  [[100, 64, 0, 0], 10, "carrier-grade NAT"],
  [[127, 0, 0, 0], 8, "loopback"],
  [[169, 254, 0, 0], 16, "link-local"],
  [[172, 16, 0, 0], 12, "private"],
  [[192, 0, 0, 0], 24, "IETF protocol assignments"],
  [[192, 0, 2, 0], 24, "documentation"],
  [[192, 88, 99, 0], 24, "6to4 relay anycast"],
  [[192, 168, 0, 0], 16, "private"],
  [[198, 18, 0, 0], 15, "benchmarking"],
  [[198, 51, 100, 0], 24, "documentation"],
  [[203, 0, 113, 0], 24, "documentation"],
  [[224, 0, 0, 0], 4, "multicast"],
  [[240, 0, 0, 0], 4, "reserved"], // includes 255.255.255.255 (broadcast)
];

/** IPv6 prefixes inside 2000::/3 that are still not public unicast, as [first bytes, prefix bits, why]. */
const V6_REFUSED: [number[], number, string][] = [
  [[0x20, 0x01, 0x00], 23, "IETF protocol assignments (Teredo included)"],
  [[0x20, 0x01, 0x0d, 0xb8], 32, "documentation"],
  [[0x20, 0x02], 16, "6to4 (embeds an IPv4 address)"],
  [[0x3f, 0xff], 20, "documentation"],
];

function prefixMatch(b: number[], prefix: number[], len: number): boolean {
  for (let i = 0; i < len; i++) {
    const bit = (x: number) => (x >> (7 - (i % 8))) & 1;
    if (bit(b[i >> 3]) !== bit(prefix[i >> 3] ?? 0)) return false;
  }
  return true;
}

export interface AddressPolicy {
  /** admit loopback (127.0.0.0/8, ::1): tests and --insecure-localhost only */
  allowLoopback?: boolean;
}

/** Why `ip` may not receive a callback, or undefined when it is a public unicast address. */
export function refusedAddress(ip: string, policy: AddressPolicy = {}): string | undefined {
  const p = parseIp(ip);
  if (!p) return `${ip} is not an IP address`;
  const b = p.bytes;
  if (p.v === 4) {
    if (policy.allowLoopback && b[0] === 127) return undefined;
    const hit = V4_REFUSED.find(([net, len]) => inV4(b, net, len));
    return hit && `${ip} is a ${hit[2]} address`;
  }
  const isLoop = b.slice(0, 15).every((x) => x === 0) && b[15] === 1;
  if (isLoop) return policy.allowLoopback ? undefined : `${ip} is a loopback address`;
  if ((b[0] & 0xe0) !== 0x20) {
    // Outside global unicast: ::, ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), 64:ff9b::/96 and
    // 64:ff9b:1::/48 (NAT64), 100::/64 (discard), fc00::/7 (unique local), fe80::/10 (link-local), ff00::/8.
    return `${ip} is not a global unicast IPv6 address`;
  }
  const hit = V6_REFUSED.find(([prefix, len]) => prefixMatch(b, prefix, len));
  return hit && `${ip} is a ${hit[2]} address`;
}

/** Names that mean this machine or a local network whatever DNS says (RFC 6761, RFC 6762, RFC 8375). */
const LOCAL_SUFFIXES = ["localhost", "local", "internal", "localdomain", "home.arpa", "lan", "intranet"];

/** Why a host *name* may not receive a callback (before any resolution), or undefined. */
export function refusedHostname(host: string): string | undefined {
  const h = host.toLowerCase().replace(/\.$/, "");
  if (!h || h.includes("..")) return `${host} is not a valid host name`;
  if (!h.includes(".")) return `${host} is a single-label name (use a fully qualified public name)`;
  for (const s of LOCAL_SUFFIXES) {
    if (h === s || h.endsWith("." + s)) return `${host} names a local host or network`;
  }
  return undefined;
}
