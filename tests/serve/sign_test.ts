import { bearer, sign, timingSafeEqual, verify } from "../../src/serve/sign.ts";
import { assert, assertEq } from "./helpers.ts";

Deno.test("sign/verify: round trip; method, path, body and secret are all covered; 5-minute window", async () => {
  const req = { method: "POST", path: "/v1/eval-jobs", body: '{"a":1}' };
  const t = 1_700_000_000;
  const h = await sign("s3cret", { ...req, timestamp: t });
  assert(/^t=1700000000,n=[0-9a-f]{32},v1=[0-9a-f]{64}$/.test(h), h);
  assert(h !== await sign("s3cret", { ...req, timestamp: t }), "a fresh nonce each time");
  const nonce = "00112233445566778899aabbccddeeff";
  assertEq(
    await sign("s3cret", { ...req, timestamp: t, nonce }),
    await sign("s3cret", { ...req, timestamp: t, nonce }),
  );
  assert((await verify("s3cret", h, req, { nowS: t + 299 })).ok, "fresh");
  assert((await verify("s3cret", h, req, { nowS: t - 299 })).ok, "slightly ahead clock");
  assert(!(await verify("s3cret", h, req, { nowS: t + 301 })).ok, "stale");
  assert(!(await verify("other", h, req, { nowS: t })).ok, "secret");
  assert(!(await verify("s3cret", h, { ...req, method: "DELETE" }, { nowS: t })).ok, "method");
  assert(!(await verify("s3cret", h, { ...req, path: "/v1/eval-jobs/x" }, { nowS: t })).ok, "path");
  assert(!(await verify("s3cret", h, { ...req, body: '{"a":2}' }, { nowS: t })).ok, "body");
  assert(
    !(await verify("s3cret", h.replace("t=1700000000", "t=1700000001"), req, { nowS: t })).ok,
    "timestamp",
  );
  const otherNonce = h.replace(/n=([0-9a-f])/, (_m, c: string) => `n=${c === "0" ? "1" : "0"}`);
  assert(!(await verify("s3cret", otherNonce, req, { nowS: t })).ok, "nonce covered");
  assert(
    !(await verify(
      "s3cret",
      h.toUpperCase().replace("T=", "t=").replace("N=", "n=").replace("V1=", "v1="),
      req,
      { nowS: t },
    )).ok,
    "lowercase only",
  );
  const ok = await verify("s3cret", h, req, { nowS: t });
  assert(ok.ok && ok.mac === h.split("v1=")[1], "mac returned");
  assert(!(await verify("s3cret", null, req)).ok, "missing");
  assert(!(await verify("s3cret", "garbage", req)).ok, "garbage");
  const bytes = new TextEncoder().encode(req.body);
  assert((await verify("s3cret", h, { ...req, body: bytes }, { nowS: t })).ok, "bytes == string");
});

Deno.test("timingSafeEqual and bearer parsing", async () => {
  assert(await timingSafeEqual("abc", "abc"), "equal");
  assert(!(await timingSafeEqual("abc", "abd")), "differ");
  assert(!(await timingSafeEqual("abc", "abcd")), "length");
  assert(!(await timingSafeEqual("", "x")), "empty");
  assertEq(bearer("Bearer tok"), "tok");
  assertEq(bearer("bearer  tok "), "tok");
  assertEq(bearer("Basic tok"), undefined);
  assertEq(bearer("Bearer a b"), undefined);
  assertEq(bearer(null), undefined);
});
