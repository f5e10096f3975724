// The callback address filter as pure functions: no request is made and no name is resolved here.
import { parseIp, refusedAddress, refusedHostname } from "../../src/serve/address.ts";
import { checkCallbackUrl } from "../../src/serve/callback.ts";
import { assert, assertEq } from "./helpers.ts";

Deno.test("refusedAddress: every non-public range is refused, public unicast passes", () => {
  const refused = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1", // CGNAT
    "100.127.255.254",
    "127.0.0.1",
    "127.255.0.9",
    "169.254.169.254", // cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1", // benchmarking 198.18.0.0/15
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1", // multicast
    "239.255.255.250",
    "240.0.0.1", // reserved
    "255.255.255.255", // broadcast
    "::",
    "::1",
    "::127.0.0.1", // IPv4-compatible (deprecated) form of 127.0.0.1
    "::7f00:1",
    "::ffff:127.0.0.1", // IPv4-mapped
    "::ffff:8.8.8.8", // mapped: refused whatever it embeds (a v4 address belongs in an A record)
    "64:ff9b::7f00:1", // NAT64 embedding 127.0.0.1
    "64:ff9b::808:808", // NAT64 embedding anything
    "64:ff9b:1::1",
    "100::1", // discard
    "2001::1", // Teredo
    "2001:db8::1", // documentation
    "2002:7f00:1::1", // 6to4 embedding 127.0.0.1
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "ff02::1",
    "3fff::1", // documentation (RFC 9637)
  ];
  for (const ip of refused) assert(refusedAddress(ip) !== undefined, `${ip} must be refused`);
  for (const ip of ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.128.0.1", "172.32.0.1", "2606:4700::1111"]) {
    assertEq(refusedAddress(ip), undefined, `${ip}:`);
  }
  // Loopback passes only with the test-only allowance, and nothing else does.
  assertEq(refusedAddress("127.0.0.1", { allowLoopback: true }), undefined);
  assertEq(refusedAddress("::1", { allowLoopback: true }), undefined);
  assert(refusedAddress("10.0.0.1", { allowLoopback: true }), "private stays refused with the allowance");
  assert(refusedAddress("::ffff:127.0.0.1", { allowLoopback: true }), "mapped stays refused");
  assert(refusedAddress("not an ip"), "garbage refused");
});

Deno.test("parseIp: IPv4 and IPv6 spellings, including compressed and embedded-v4 forms", () => {
  assertEq(parseIp("1.2.3.4"), { v: 4, bytes: [1, 2, 3, 4] });
  assertEq(parseIp("::1")?.bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assertEq(parseIp("[::ffff:1.2.3.4]")?.bytes.slice(10), [255, 255, 1, 2, 3, 4]);
  assertEq(parseIp("2001:db8:0:0:0:0:0:1"), parseIp("2001:db8::1"));
  for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "12345::", "::1:2:3:4:5:6:7:8", ""]) {
    assertEq(parseIp(bad), undefined, `${bad}:`);
  }
});

Deno.test("refusedHostname: localhost in every spelling, single labels and local suffixes", () => {
  for (
    const h of [
      "localhost",
      "LOCALHOST",
      "localhost.",
      "a.localhost",
      "a.b.localhost.",
      "printer.local",
      "x.internal",
      "intranet",
      "router.home.arpa",
      "x.localdomain",
    ]
  ) assert(refusedHostname(h), `${h} must be refused`);
  for (const h of ["example.com", "hooks.example.com.", "maieutic-eval.deno.dev"]) {
    assertEq(refusedHostname(h), undefined, `${h}:`);
  }
});

Deno.test("checkCallbackUrl: https public names; literals checked by the address filter; allow-list", () => {
  const ok = (u: string, o = {}) => assertEq(checkCallbackUrl(u, o), undefined, `${u}:`);
  const no = (u: string, o = {}) => assert(checkCallbackUrl(u, o), `${u} must be refused`);
  ok("https://hooks.example.com/cb");
  no("http://hooks.example.com/cb");
  no("https://user:pw@hooks.example.com/cb");
  for (
    const u of [
      "https://localhost./cb",
      "https://a.localhost/cb",
      "https://[::127.0.0.1]/cb",
      "https://[64:ff9b::7f00:1]/cb",
      "https://198.18.0.1/cb",
      "https://224.0.0.1/cb",
      "https://240.0.0.1/cb",
      "https://255.255.255.255/cb",
      "https://0x7f.1/cb",
      "https://2130706433/cb",
      "https://[::ffff:7f00:1]/cb",
    ]
  ) no(u);
  // The test-only allowance admits http to a loopback literal, nothing more.
  ok("http://127.0.0.1:9/cb", { allowLoopback: true });
  ok("http://[::1]:9/cb", { allowLoopback: true });
  no("http://localhost:9/cb", { allowLoopback: true });
  no("http://10.0.0.1/cb", { allowLoopback: true });
  // An allow-list restricts names further.
  ok("https://hooks.example.com/cb", { hosts: ["hooks.example.com"] });
  no("https://other.example.com/cb", { hosts: ["hooks.example.com"] });
});
