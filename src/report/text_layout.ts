/**
 * Real text metrics for Plotly inside a headless DOM.
 *
 * Plotly sizes every label with getBoundingClientRect() on SVG <text> (via Drawing.bBox, which clones the node
 * into a hidden tester <svg> and compares it with a 1x1 reference path). Headless DOMs answer zero, so axis
 * titles jump to the top and legend entries pile up. This module lays out <text>/<tspan> the way resvg will draw
 * it — same font files (npm:fontkit reads the bytes resvg gets), resvg's text chunks, anchors, x/y/dx/dy,
 * font sizes, whitespace handling (xml:space only: resvg ignores CSS white-space) and its font-fallback rule — and reports boxes the way Chromium does (glyph
 * advances horizontally; the primary font's rounded ascent + descent vertically), then installs that as
 * getBoundingClientRect/getBBox/getComputedTextLength on happy-dom's SVG elements.
 *
 * resvg's fallback rule (usvg text layout, `shape_text` / `find_font_for_char`): a chunk is shaped as a whole with
 * the first font of its font-family list that exists (generic names map to the default family); if a glyph is
 * missing, the first other font in database order that has the first missing character shapes the whole chunk
 * again: when it has every glyph it replaces the whole chunk, otherwise (same glyph count) only missing glyphs are
 * replaced; repeat until nothing is missing or no font is left. So "Loss 損失" is drawn entirely in Noto Sans JP.
 */
import * as fontkitModule from "fontkit";

// ---------------------------------------------------------------------------------------------------------------
// fontkit (no bundled types): the few members we use.

interface FkGlyph {
  id: number;
  codePoints: number[];
}
interface FkPosition {
  xAdvance: number;
}
interface FkGlyphRun {
  glyphs: FkGlyph[];
  positions: FkPosition[];
}
interface FkFont {
  familyName: string;
  getGlyph(id: number): { bbox: { minX: number; minY: number; maxX: number; maxY: number } };
  unitsPerEm: number;
  ascent: number;
  descent: number;
  hasGlyphForCodePoint(cp: number): boolean;
  layout(text: string): FkGlyphRun;
}
const fontkit = fontkitModule as unknown as { create(bytes: Uint8Array): FkFont };

export interface FontSource {
  family: string;
  bytes: Uint8Array;
}

interface Face {
  family: string;
  font: FkFont;
  /** hhea ascent / descent in em (descent positive). */
  ascent: number;
  descent: number;
}

/** One shaped glyph: its id in the face it comes from, its advance in em, the index of its first character. */
export interface ShapedGlyph {
  id: number;
  face: number;
  advance: number;
  char: number;
}

const GENERIC_FAMILIES = new Set([
  "serif",
  "sans-serif",
  "cursive",
  "fantasy",
  "monospace",
  "system-ui",
  "ui-sans-serif",
  "ui-serif",
  "ui-monospace",
]);

/** Shapes and measures text with a fixed list of fonts, following resvg's family matching and fallback. */
export class TextShaper {
  readonly faces: Face[];
  private readonly defaultFace: number;
  private readonly familyCache = new Map<string, number>();
  private readonly shapeCache = new Map<string, ShapedGlyph[]>();

  constructor(fonts: readonly FontSource[], defaultFamily?: string) {
    this.faces = fonts.map((f) => {
      const font = fontkit.create(f.bytes);
      return {
        family: f.family,
        font,
        ascent: font.ascent / font.unitsPerEm,
        descent: -font.descent / font.unitsPerEm,
      };
    });
    const d = this.faces.findIndex((f) => f.family === defaultFamily);
    this.defaultFace = d < 0 ? 0 : d;
  }

  /** The face a CSS font-family list selects: the first listed family we have; generic names -> default. */
  resolveFamily(list: string | undefined): number {
    const key = list ?? "";
    const hit = this.familyCache.get(key);
    if (hit !== undefined) return hit;
    let found = -1;
    for (const raw of splitFamilies(key)) {
      if (GENERIC_FAMILIES.has(raw.toLowerCase())) {
        found = this.defaultFace;
        break;
      }
      // fontdb compares family names exactly.
      const i = this.faces.findIndex((f) => f.family === raw);
      if (i >= 0) {
        found = i;
        break;
      }
    }
    // usvg appends `serif` to every list, which we map to the default family.
    if (found < 0) found = this.defaultFace;
    this.familyCache.set(key, found);
    return found;
  }

  /** Shapes one text chunk with `primary`, with resvg's fallback. Advances are in em. */
  shape(text: string, primary: number): ShapedGlyph[] {
    const key = `${primary}\u0000${text}`;
    const hit = this.shapeCache.get(key);
    if (hit) return hit;
    const chars = Array.from(text);
    let glyphs = this.shapeWith(text, primary);
    const used = [primary];
    for (;;) {
      const missing = glyphs.find((g) => g.id === 0);
      if (!missing) break;
      const cp = chars[missing.char]?.codePointAt(0);
      if (cp === undefined) break;
      const fb = this.faces.findIndex((f, i) => !used.includes(i) && f.font.hasGlyphForCodePoint(cp));
      if (fb < 0) break;
      const alt = this.shapeWith(text, fb);
      if (alt.every((g) => g.id !== 0)) {
        glyphs = alt;
        break;
      }
      if (alt.length !== glyphs.length) break;
      glyphs = glyphs.map((g, i) => (g.id === 0 && alt[i].id !== 0 ? alt[i] : g));
      used.push(fb);
    }
    const out = glyphs;
    if (this.shapeCache.size > 20000) this.shapeCache.clear();
    this.shapeCache.set(key, out);
    return out;
  }

  private shapeWith(text: string, face: number): ShapedGlyph[] {
    const f = this.faces[face].font;
    const run = f.layout(text);
    const out: ShapedGlyph[] = [];
    let char = 0;
    run.glyphs.forEach((g, i) => {
      const n = g.codePoints.length;
      // A glyph without code points (a decomposition) belongs to the previous glyph's cluster.
      const at = n === 0 && out.length ? out[out.length - 1].char : char;
      out.push({ id: g.id, face, advance: run.positions[i].xAdvance / f.unitsPerEm, char: at });
      char += n;
    });
    return out;
  }

  /** Width in px of `text` drawn as one chunk at `fontSize` with the given font-family list. */
  measure(text: string, fontSize: number, family?: string): number {
    return clusterAdvances(this.shape(text, this.resolveFamily(family)), Array.from(text).length)
      .reduce((s, a) => s + a, 0) * fontSize;
  }

  /**
   * The ink extent (union of glyph outline boxes) of `text` drawn as one start-anchored chunk with the pen at
   * (0, 0) on the baseline, in px, y down: where resvg will put pixels.
   */
  inkBox(text: string, fontSize: number, family?: string): Box | null {
    const glyphs = this.shape(text, this.resolveFamily(family));
    let pen = 0, x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    let i = 0;
    while (i < glyphs.length) {
      // One cluster: glyphs sharing a first character, advancing by the widest of them (as resvg does).
      const c = glyphs[i].char;
      let w = 0, gx = 0;
      for (; i < glyphs.length && glyphs[i].char === c; i++) {
        const g = glyphs[i];
        const f = this.faces[g.face].font;
        const b = f.getGlyph(g.id).bbox;
        const s = fontSize / f.unitsPerEm;
        if (b.maxX > b.minX && b.maxY > b.minY) {
          x0 = Math.min(x0, pen + gx + b.minX * s);
          x1 = Math.max(x1, pen + gx + b.maxX * s);
          y0 = Math.min(y0, -b.maxY * s);
          y1 = Math.max(y1, -b.minY * s);
        }
        gx += g.advance * fontSize;
        w = Math.max(w, g.advance * fontSize);
      }
      pen += w;
    }
    return x0 > x1 ? null : { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  }

  /** Chromium-style ascent and descent (rounded px) of the face a family list selects, at a font size. */
  verticalMetrics(fontSize: number, family?: string): { ascent: number; descent: number } {
    const f = this.faces[this.resolveFamily(family)];
    return { ascent: Math.round(f.ascent * fontSize), descent: Math.round(f.descent * fontSize) };
  }
}

/**
 * Per-character advances (em) of a shaped chunk. resvg forms clusters from glyphs sharing a first character and
 * gives a cluster the widest of its glyph advances; a character inside a ligature gets 0.
 */
export function clusterAdvances(glyphs: ShapedGlyph[], nChars: number): number[] {
  const adv = new Array<number>(nChars).fill(0);
  let i = 0;
  while (i < glyphs.length) {
    const c = glyphs[i].char;
    let w = 0;
    while (i < glyphs.length && glyphs[i].char === c) w = Math.max(w, glyphs[i++].advance);
    if (c < nChars) adv[c] += w;
  }
  return adv;
}

function splitFamilies(list: string): string[] {
  return list.split(",").map((s) => s.trim().replace(/^(['"])(.*)\1$/, "$2").trim()).filter((s) => s !== "");
}

// ---------------------------------------------------------------------------------------------------------------
// SVG text layout on a DOM (happy-dom) tree.

/** The DOM surface we read: satisfied by happy-dom's nodes. */
export interface DomNode {
  nodeType: number;
  nodeName: string;
  textContent: string | null;
  parentNode: DomNode | null;
  childNodes: ArrayLike<DomNode>;
  getAttribute?(name: string): string | null;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

interface Style {
  fontSize: number;
  family: string;
  anchor: string;
  preserve: boolean;
}

const ROOT_STYLE: Style = { fontSize: 12, family: "", anchor: "start", preserve: false };

const styleCache = new Map<string, Map<string, string>>();

function parseStyleAttr(s: string): Map<string, string> {
  let m = styleCache.get(s);
  if (m) return m;
  m = new Map();
  for (const decl of s.split(";")) {
    const i = decl.indexOf(":");
    if (i < 0) continue;
    m.set(decl.slice(0, i).trim().toLowerCase(), decl.slice(i + 1).replace(/!important/i, "").trim());
  }
  if (styleCache.size > 5000) styleCache.clear();
  styleCache.set(s, m);
  return m;
}

/** A presentation property: inline style wins over the attribute. */
function prop(el: DomNode, name: string): string | undefined {
  const st = el.getAttribute?.("style");
  if (st) {
    const v = parseStyleAttr(st).get(name);
    if (v !== undefined && v !== "" && v !== "inherit") return v;
  }
  const a = el.getAttribute?.(name);
  return a === null || a === undefined || a === "" || a === "inherit" ? undefined : a;
}

function parseFontSize(v: string | undefined, parent: number): number {
  if (!v) return parent;
  const m = /^(-?[\d.]+(?:e[-+]?\d+)?)\s*(px|pt|em|rem|%|ex)?$/i.exec(v.trim());
  if (!m) {
    if (v === "smaller") return parent / 1.2;
    if (v === "larger") return parent * 1.2;
    return parent;
  }
  const n = Number(m[1]);
  switch ((m[2] ?? "px").toLowerCase()) {
    case "pt":
      return n * 4 / 3;
    case "em":
    case "rem":
      return n * parent;
    case "ex":
      return n * parent / 2;
    case "%":
      return n * parent / 100;
    default:
      return n;
  }
}

function elementStyle(el: DomNode, parent: Style): Style {
  // resvg (usvg 0.35) honours only xml:space, not CSS white-space (Plotly sets `white-space: pre` everywhere).
  const xs = el.getAttribute?.("xml:space");
  return {
    fontSize: parseFontSize(prop(el, "font-size"), parent.fontSize),
    family: prop(el, "font-family") ?? parent.family,
    anchor: prop(el, "text-anchor") ?? parent.anchor,
    preserve: xs ? xs === "preserve" : parent.preserve,
  };
}

function inheritedStyle(el: DomNode | null): Style {
  const chain: DomNode[] = [];
  for (let n = el; n && n.nodeType === 1; n = n.parentNode) chain.push(n);
  let s = ROOT_STYLE;
  for (let i = chain.length - 1; i >= 0; i--) s = elementStyle(chain[i], s);
  return s;
}

/** First length of an x/y/dx/dy attribute in px (em/ex relative to the element's font size); % is ignored. */
function firstLength(el: DomNode, name: string, fontSize: number): number | undefined {
  const v = el.getAttribute?.(name);
  if (v === null || v === undefined) return undefined;
  const first = v.trim().split(/[\s,]+/)[0];
  const m = /^(-?[\d.]+(?:e[-+]?\d+)?)(px|em|ex|pt|%)?$/i.exec(first);
  if (!m) return undefined;
  const n = Number(m[1]);
  switch ((m[2] ?? "").toLowerCase()) {
    case "em":
      return n * fontSize;
    case "ex":
      return n * fontSize / 2;
    case "pt":
      return n * 4 / 3;
    case "%":
      return undefined;
    default:
      return n;
  }
}

interface Pos {
  x?: number;
  y?: number;
  dx?: number;
  dy?: number;
}

interface TextChar {
  ch: string;
  style: Style;
  pos: Pos;
  preserve: boolean;
}

function isHidden(el: DomNode): boolean {
  return prop(el, "display") === "none";
}

function collectChars(el: DomNode, style: Style, out: TextChar[], pending: Pos[]): void {
  if (isHidden(el)) return;
  const pos: Pos = {
    x: firstLength(el, "x", style.fontSize),
    y: firstLength(el, "y", style.fontSize),
    dx: firstLength(el, "dx", style.fontSize),
    dy: firstLength(el, "dy", style.fontSize),
  };
  pending.push(pos);
  const kids = el.childNodes;
  for (let i = 0; i < kids.length; i++) {
    const k = kids[i];
    if (k.nodeType === 3) {
      for (const ch of k.textContent ?? "") {
        const p: Pos = {};
        // The innermost element's value wins; every pending element's attributes go to this character.
        for (const q of pending) {
          if (q.x !== undefined) p.x = q.x;
          if (q.y !== undefined) p.y = q.y;
          if (q.dx !== undefined) p.dx = q.dx;
          if (q.dy !== undefined) p.dy = q.dy;
        }
        pending.length = 0;
        out.push({ ch, style, pos: p, preserve: style.preserve });
      }
    } else if (k.nodeType === 1) {
      const name = k.nodeName.toLowerCase();
      if (name === "tspan" || name === "a" || name === "textpath") {
        collectChars(k, elementStyle(k, style), out, pending);
      }
    }
  }
  // Attributes of an element without characters apply to nothing.
  const i = pending.indexOf(pos);
  if (i >= 0) pending.splice(i, 1);
}

/** SVG whitespace handling (xml:space default: drop newlines, tabs -> spaces, trim, collapse; preserve: map to spaces). */
function processWhitespace(chars: TextChar[]): TextChar[] {
  const out: TextChar[] = [];
  let carry: Pos | undefined;
  const keep = (c: TextChar) => {
    if (carry) {
      c.pos = { ...carry, ...c.pos };
      carry = undefined;
    }
    out.push(c);
  };
  const drop = (c: TextChar) => {
    if (Object.keys(c.pos).length) carry = { ...carry, ...c.pos };
  };
  for (const c of chars) {
    if (c.preserve) {
      keep({ ...c, ch: c.ch === "\n" || c.ch === "\r" || c.ch === "\t" ? " " : c.ch });
      continue;
    }
    if (c.ch === "\n" || c.ch === "\r") {
      drop(c);
      continue;
    }
    const ch = c.ch === "\t" ? " " : c.ch;
    if (
      ch === " " && (out.length === 0 || (out[out.length - 1].ch === " " && !out[out.length - 1].preserve))
    ) {
      drop(c);
      continue;
    }
    keep({ ...c, ch });
  }
  while (out.length && out[out.length - 1].ch === " " && !out[out.length - 1].preserve) out.pop();
  return out;
}

/**
 * The box of a <text> element in its own user space (its transform not applied), as Chromium reports it: each
 * character cell spans its advance horizontally and the primary font's ascent..descent vertically. Returns null
 * for an empty text.
 */
export function layoutText(shaper: TextShaper, text: DomNode): Box | null {
  const base = inheritedStyle(text.parentNode);
  const raw: TextChar[] = [];
  collectChars(text, elementStyle(text, base), raw, []);
  const chars = processWhitespace(raw);
  if (!chars.length) return null;

  // Text chunks start at every character with an absolute x or y (and at the first character).
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  let penX = 0, penY = 0;
  let start = 0;
  while (start < chars.length) {
    let end = start + 1;
    while (end < chars.length && chars[end].pos.x === undefined && chars[end].pos.y === undefined) end++;
    const chunk = chars.slice(start, end);
    const first = chunk[0];
    const face = shaper.resolveFamily(first.style.family);
    const adv = clusterAdvances(shaper.shape(chunk.map((c) => c.ch).join(""), face), chunk.length);
    const widths = chunk.map((c, i) => adv[i] * c.style.fontSize);
    const total = widths.reduce((s, w) => s + w, 0);
    const shift = first.style.anchor === "middle" ? -total / 2 : first.style.anchor === "end" ? -total : 0;
    let x = (first.pos.x ?? penX) + shift;
    let y = first.pos.y ?? penY;
    chunk.forEach((c, i) => {
      x += c.pos.dx ?? 0;
      y += c.pos.dy ?? 0;
      const m = shaper.verticalMetrics(c.style.fontSize, c.style.family);
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x + widths[i]);
      minY = Math.min(minY, y - m.ascent);
      maxY = Math.max(maxY, y + m.descent);
      x += widths[i];
    });
    penX = x;
    penY = y;
    start = end;
  }
  return { x: minX, y: minY, width: maxX - minX, height: maxY - minY };
}

/** Total advance of a text element's characters (SVGTextContentElement.getComputedTextLength). */
export function textLength(shaper: TextShaper, text: DomNode): number {
  const raw: TextChar[] = [];
  collectChars(text, elementStyle(text, inheritedStyle(text.parentNode)), raw, []);
  const chars = processWhitespace(raw);
  if (!chars.length) return 0;
  const face = shaper.resolveFamily(chars[0].style.family);
  const adv = clusterAdvances(shaper.shape(chars.map((c) => c.ch).join(""), face), chars.length);
  return chars.reduce((s, c, i) => s + adv[i] * c.style.fontSize, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Transforms and boxes of other SVG elements.

/** Affine matrix [a, b, c, d, e, f] as in SVG. */
export type Matrix = [number, number, number, number, number, number];
const IDENTITY: Matrix = [1, 0, 0, 1, 0, 0];

function multiply(m: Matrix, n: Matrix): Matrix {
  return [
    m[0] * n[0] + m[2] * n[1],
    m[1] * n[0] + m[3] * n[1],
    m[0] * n[2] + m[2] * n[3],
    m[1] * n[2] + m[3] * n[3],
    m[0] * n[4] + m[2] * n[5] + m[4],
    m[1] * n[4] + m[3] * n[5] + m[5],
  ];
}

const transformCache = new Map<string, Matrix>();

export function parseTransform(s: string | null | undefined): Matrix {
  if (!s) return IDENTITY;
  const hit = transformCache.get(s);
  if (hit) return hit;
  let m = IDENTITY;
  const re = /(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)/g;
  for (let r = re.exec(s); r; r = re.exec(s)) {
    const a = r[2].trim().split(/[\s,]+/).filter((t) => t !== "").map(Number);
    let t: Matrix = IDENTITY;
    switch (r[1]) {
      case "matrix":
        if (a.length === 6) t = a as Matrix;
        break;
      case "translate":
        t = [1, 0, 0, 1, a[0] ?? 0, a[1] ?? 0];
        break;
      case "scale":
        t = [a[0] ?? 1, 0, 0, a[1] ?? a[0] ?? 1, 0, 0];
        break;
      case "rotate": {
        const rad = (a[0] ?? 0) * Math.PI / 180, c = Math.cos(rad), sn = Math.sin(rad);
        t = [c, sn, -sn, c, 0, 0];
        if (a.length >= 3) t = multiply(multiply([1, 0, 0, 1, a[1], a[2]], t), [1, 0, 0, 1, -a[1], -a[2]]);
        break;
      }
      case "skewX":
        t = [1, 0, Math.tan((a[0] ?? 0) * Math.PI / 180), 1, 0, 0];
        break;
      case "skewY":
        t = [1, Math.tan((a[0] ?? 0) * Math.PI / 180), 0, 1, 0, 0];
        break;
    }
    if (t.some((v) => !Number.isFinite(v))) t = IDENTITY;
    m = multiply(m, t);
  }
  if (transformCache.size > 5000) transformCache.clear();
  transformCache.set(s, m);
  return m;
}

function mapBox(m: Matrix, b: Box): Box {
  if (m === IDENTITY) return b;
  const pts = [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height], [b.x + b.width, b.y + b.height]];
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of pts) {
    const X = m[0] * x + m[2] * y + m[4], Y = m[1] * x + m[3] * y + m[5];
    x0 = Math.min(x0, X);
    x1 = Math.max(x1, X);
    y0 = Math.min(y0, Y);
    y1 = Math.max(y1, Y);
  }
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

function union(a: Box | null, b: Box | null): Box | null {
  if (!a) return b;
  if (!b) return a;
  const x = Math.min(a.x, b.x), y = Math.min(a.y, b.y);
  return {
    x,
    y,
    width: Math.max(a.x + a.width, b.x + b.width) - x,
    height: Math.max(a.y + a.height, b.y + b.height) - y,
  };
}

function num(el: DomNode, name: string): number {
  const v = Number.parseFloat(el.getAttribute?.(name) ?? "");
  return Number.isFinite(v) ? v : 0;
}

/** Bounding box of path data (end and control points; arcs by their end points). */
export function pathBox(d: string): Box | null {
  const tokens = d.match(/[MmLlHhVvCcSsQqTtAaZz]|-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?/g);
  if (!tokens) return null;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const add = (x: number, y: number) => {
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
  };
  let cx = 0, cy = 0, sx = 0, sy = 0, cmd = "", i = 0;
  const arity: Record<string, number> = { m: 2, l: 2, h: 1, v: 1, c: 6, s: 4, q: 4, t: 2, a: 7, z: 0 };
  while (i < tokens.length) {
    if (/[A-Za-z]/.test(tokens[i])) {
      cmd = tokens[i++];
      if (cmd === "z" || cmd === "Z") {
        cx = sx;
        cy = sy;
        continue;
      }
    }
    const lc = cmd.toLowerCase();
    const n = arity[lc];
    if (!n || i + n > tokens.length) break;
    const a = tokens.slice(i, i + n).map(Number);
    i += n;
    const rel = cmd !== cmd.toUpperCase();
    const ox = rel ? cx : 0, oy = rel ? cy : 0;
    switch (lc) {
      case "h":
        cx = a[0] + ox;
        break;
      case "v":
        cy = a[0] + oy;
        break;
      case "a":
        cx = a[5] + ox;
        cy = a[6] + oy;
        break;
      default:
        for (let k = 0; k + 1 < n; k += 2) add(a[k] + ox, a[k + 1] + oy);
        cx = a[n - 2] + ox;
        cy = a[n - 1] + oy;
    }
    add(cx, cy);
    if (lc === "m") {
      sx = cx;
      sy = cy;
      cmd = rel ? "l" : "L";
    }
  }
  if (x0 > x1) return null;
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

/** The box of an element in its own user space (its own transform not applied). */
export function localBox(shaper: TextShaper, el: DomNode): Box | null {
  if (el.nodeType !== 1 || isHidden(el)) return null;
  const name = el.nodeName.toLowerCase();
  switch (name) {
    case "text":
      return layoutText(shaper, el);
    case "rect":
    case "image":
    case "foreignobject":
      return { x: num(el, "x"), y: num(el, "y"), width: num(el, "width"), height: num(el, "height") };
    case "circle": {
      const r = num(el, "r");
      return { x: num(el, "cx") - r, y: num(el, "cy") - r, width: 2 * r, height: 2 * r };
    }
    case "ellipse": {
      const rx = num(el, "rx"), ry = num(el, "ry");
      return { x: num(el, "cx") - rx, y: num(el, "cy") - ry, width: 2 * rx, height: 2 * ry };
    }
    case "line": {
      const x = Math.min(num(el, "x1"), num(el, "x2")), y = Math.min(num(el, "y1"), num(el, "y2"));
      return {
        x,
        y,
        width: Math.abs(num(el, "x2") - num(el, "x1")),
        height: Math.abs(num(el, "y2") - num(el, "y1")),
      };
    }
    case "path":
      return pathBox(el.getAttribute?.("d") ?? "");
    case "defs":
    case "clippath":
    case "mask":
    case "pattern":
    case "lineargradient":
    case "radialgradient":
    case "style":
    case "title":
    case "tspan":
      return null;
    default: {
      // Containers (svg, g, a, ...): union of the children, each through its own transform.
      let box: Box | null = null;
      const kids = el.childNodes;
      for (let i = 0; i < kids.length; i++) {
        const k = kids[i];
        if (k.nodeType !== 1) continue;
        const b = localBox(shaper, k);
        if (b) box = union(box, mapBox(parseTransform(k.getAttribute?.("transform")), b));
      }
      return box;
    }
  }
}

/** Element-to-root transform: its own transform and those of its SVG ancestors (below the outermost <svg>). */
function screenMatrix(el: DomNode): Matrix {
  let m = IDENTITY;
  for (let n: DomNode | null = el; n && n.nodeType === 1; n = n.parentNode) {
    if (n.nodeName.toLowerCase() === "svg") break;
    const t = parseTransform(n.getAttribute?.("transform"));
    if (t !== IDENTITY) m = multiply(t, m);
  }
  return m;
}

/** The Chromium-like client rect of an SVG element, with every <svg> root placed at the page origin. */
export function clientBox(shaper: TextShaper, el: DomNode): Box {
  const name = el.nodeName.toLowerCase();
  let b: Box | null;
  if (name === "tspan") {
    // A tspan's own extent is not needed by Plotly; report its text element's box.
    let t: DomNode | null = el.parentNode;
    while (t && t.nodeName.toLowerCase() !== "text") t = t.parentNode;
    return t ? clientBox(shaper, t) : { x: 0, y: 0, width: 0, height: 0 };
  }
  if (name === "svg") {
    b = { x: 0, y: 0, width: num(el, "width"), height: num(el, "height") };
  } else {
    b = localBox(shaper, el);
  }
  if (!b) return { x: 0, y: 0, width: 0, height: 0 };
  return mapBox(screenMatrix(el), b);
}

/** What happy-dom's window offers for patching (its element classes are shared by all windows). */
export interface PatchableWindow {
  SVGElement: { prototype: object };
  SVGGraphicsElement: { prototype: object };
  SVGTextElement: { prototype: object };
  SVGTSpanElement: { prototype: object };
  DOMRect: new (x?: number, y?: number, width?: number, height?: number) => unknown;
}

/**
 * Installs real text metrics on a happy-dom window's SVG element classes: getBoundingClientRect (all SVG
 * elements), getBBox (graphics elements) and getComputedTextLength (<text>, <tspan>).
 */
export function installSvgTextMetrics(win: PatchableWindow, shaper: TextShaper): void {
  const rect = (b: Box) => new win.DOMRect(b.x, b.y, b.width, b.height);
  Object.defineProperty(win.SVGElement.prototype, "getBoundingClientRect", {
    configurable: true,
    writable: true,
    value: function (this: DomNode) {
      return rect(clientBox(shaper, this));
    },
  });
  Object.defineProperty(win.SVGGraphicsElement.prototype, "getBBox", {
    configurable: true,
    writable: true,
    value: function (this: DomNode) {
      return rect(localBox(shaper, this) ?? { x: 0, y: 0, width: 0, height: 0 });
    },
  });
  for (const cls of [win.SVGTextElement, win.SVGTSpanElement]) {
    Object.defineProperty(cls.prototype, "getComputedTextLength", {
      configurable: true,
      writable: true,
      value: function (this: DomNode) {
        return textLength(shaper, this);
      },
    });
  }
}
