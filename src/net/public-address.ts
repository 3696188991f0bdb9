import ipaddr from "ipaddr.js";

/**
 * Which IP addresses `http` jobs and webhooks may reach: globally routable unicast only. The ranges come
 * from ipaddr.js (IANA's special-purpose registries); the rules here cover what a range name alone does
 * not decide: the IPv6 forms that carry an IPv4 address or tunnel to one. Pure functions, no DNS, no I/O.
 */

/** `range` is "unicast" when public, else why not: "loopback", "private", "6to4", "invalid", … */
export interface AddressVerdict {
  public: boolean;
  range: string;
}

// 2000::/3 is all that IANA has allocated as global unicast; everything outside it is special or unassigned.
const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parseCIDR("2000::/3");
// RFC 6052 well-known NAT64 prefix: the last 32 bits are the IPv4 address the translator connects to.
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR("64:ff9b::/96");
// RFC 8215 local-use NAT64 prefix: where the IPv4 address sits depends on the operator's prefix length.
const NAT64_LOCAL_USE = ipaddr.IPv6.parseCIDR("64:ff9b:1::/48");
// ::a.b.c.d in hex, the deprecated IPv4-compatible form (RFC 4291 2.5.5.1); also holds :: and ::1.
const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR("::/96");

const PUBLIC: AddressVerdict = { public: true, range: "unicast" };

function unbracket(raw: string): string {
  return raw.startsWith("[") && raw.endsWith("]") ? raw.slice(1, -1) : raw;
}

/**
 * Parses with ipaddr.js, IPv4 only as plain dotted decimal: "0x7f.1" or "017.0.0.1" mean different hosts
 * to different parsers. Null for anything else.
 */
function parse(raw: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const text = unbracket(raw);
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  // ipaddr.js reads "::a.b.c.d" as IPv4-mapped (::ffff:a.b.c.d); it is IPv4-compatible (::a.b.c.d), another address.
  const compatible = /^::(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (compatible !== undefined) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(compatible)) return null;
    const [a, b, c, d] = ipaddr.IPv4.parse(compatible).octets as [number, number, number, number];
    return new ipaddr.IPv6([0, 0, 0, 0, 0, 0, (a << 8) | b, (c << 8) | d]);
  }
  if (ipaddr.IPv6.isValid(text)) return ipaddr.IPv6.parse(text);
  return null;
}

function classifyV4(ip: ipaddr.IPv4): AddressVerdict {
  const range = ip.range();
  return range === "unicast" ? PUBLIC : { public: false, range };
}

function embeddedV4(ip: ipaddr.IPv6): ipaddr.IPv4 {
  return new ipaddr.IPv4(ip.toByteArray().slice(12));
}

function classifyV6(ip: ipaddr.IPv6): AddressVerdict {
  const range: string = ip.range(); // the declared union lacks names the library returns ("discard", …)
  // Mapped (::ffff:a.b.c.d) is the IPv4 host itself; translated (::ffff:0:a.b.c.d, SIIT) and well-known
  // NAT64 reach it through a translator. Either way the embedded IPv4 address decides.
  if (range === "ipv4Mapped" || range === "rfc6145" || ip.match(NAT64_WELL_KNOWN)) return classifyV4(embeddedV4(ip));
  if (ip.match(NAT64_LOCAL_USE)) return { public: false, range: "nat64LocalUse" };
  if (ip.match(IPV4_COMPATIBLE)) return { public: false, range: range === "unicast" ? "ipv4Compatible" : range };
  // 6to4 (2002::/16) and Teredo (2001::/32) tunnel to an IPv4 address taken from the bits: refused outright
  // rather than decoded, like every other special range.
  if (range !== "unicast") return { public: false, range };
  return ip.match(GLOBAL_UNICAST_V6) ? PUBLIC : { public: false, range: "notGlobalUnicast" };
}

/**
 * Classifies an IP address string (IPv4 dotted decimal, or IPv6 with optional brackets and zone id).
 * Anything that is not an address is refused: the guard fails closed.
 */
export function classifyAddress(raw: string): AddressVerdict {
  const ip = parse(raw);
  if (ip === null) return { public: false, range: "invalid" };
  if (ip.kind() === "ipv4") return classifyV4(ip as ipaddr.IPv4);
  const v6 = ip as ipaddr.IPv6;
  const verdict = classifyV6(v6);
  // A zone id only means something for link-local (refused anyway); a public address with one is suspect.
  return verdict.public && v6.zoneId !== undefined ? { public: false, range: "zoned" } : verdict;
}

/** True for anything that is not a globally routable unicast address (private, loopback, reserved, junk…). */
export function isBlockedAddress(ip: string): boolean {
  return !classifyAddress(ip).public;
}

/**
 * The spelling to connect to, from the same parse that classified it, so the checked address and the
 * connected one cannot differ: IPv4-mapped becomes plain IPv4, IPv6 is RFC 5952. Null if not an address.
 */
export function canonicalAddress(raw: string): string | null {
  const ip = parse(raw);
  if (ip === null) return null;
  if (ip.kind() === "ipv4") return ip.toString();
  const v6 = ip as ipaddr.IPv6;
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toRFC5952String();
}
