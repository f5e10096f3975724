/**
 * Text metrics for the headless Plotly: fontkit layout vs resvg's own drawing, resvg's fallback rule, and the
 * <text>/<tspan> layout Plotly sees through getBoundingClientRect.
 */
import assert from "node:assert/strict";
import { Window } from "happy-dom";
import { DEFAULT_FAMILY, FIGURE_FONT_FAMILY, FONTS } from "../../src/report/fonts.ts";
import {
  clientBox,
  type DomNode,
  installSvgTextMetrics,
  layoutText,
  parseTransform,
  type PatchableWindow,
  pathBox,
  TextShaper,
} from "../../src/report/text_layout.ts";
import { svgToPng } from "../../src/report/plot.ts";
import { decodePng, inkBox, near } from "./png.ts";

const shaper = new TextShaper(FONTS, DEFAULT_FAMILY);
const FAMILY = FIGURE_FONT_FAMILY.replace(/"/g, "'");

/** Draws one line of text with resvg and returns the ink box of its pixels. */
async function resvgInk(text: string, size: number, x = 20, y = 60) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="100">` +
    `<text x="${x}" y="${y}" style="font-family: ${FAMILY}; font-size: ${size}px">${text}</text></svg>`;
  const ink = inkBox(decodePng(await svgToPng(svg)), 160);
  assert(ink, `resvg drew nothing for ${text}`);
  return ink;
}

Deno.test("fontkit layout of a Japanese title matches resvg's drawing within a pixel", async () => {
  const cases: [string, number][] = [
    ["ソクラテス的対話の学習曲線 (損失)", 24],
    ["maieutic · 1gouki · 最良 eval loss 0.7267", 18],
    ["Gradient norm AVAWAY fi", 16],
  ];
  for (const [text, size] of cases) {
    const ink = await resvgInk(text, size);
    const ours = shaper.inkBox(text, size, FAMILY)!;
    const msg = `${text}: resvg ${JSON.stringify(ink)} vs ours ${JSON.stringify(ours)}`;
    near(ink.x0, 20 + ours.x, 1.5, msg);
    near(ink.x1, 20 + ours.x + ours.width, 1.5, msg);
    near(ink.y0, 60 + ours.y, 1.5, msg);
    near(ink.y1, 60 + ours.y + ours.height, 1.5, msg);
  }
});

Deno.test("text-anchor middle and end shift by the measured width, as resvg does", async () => {
  const text = "学習率 learning rate";
  const w = shaper.measure(text, 20, FAMILY);
  const ours = shaper.inkBox(text, 20, FAMILY)!;
  for (const anchor of ["middle", "end"]) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="100">` +
      `<text x="500" y="60" text-anchor="${anchor}" style="font-family: ${FAMILY}; font-size: 20px">${text}</text></svg>`;
    const ink = inkBox(decodePng(await svgToPng(svg)), 160)!;
    const start = 500 - (anchor === "middle" ? w / 2 : w);
    near(ink.x0, start + ours.x, 1.5, anchor);
    near(ink.x1, start + ours.x + ours.width, 1.5, anchor);
  }
});

Deno.test("resvg's fallback rule: a chunk with a character DejaVu lacks is drawn wholly in Noto Sans JP", () => {
  const latin = shaper.shape("Loss 0.5", shaper.resolveFamily(FAMILY));
  assert(latin.every((g) => FONTS[g.face].family === "DejaVu Sans"));
  const mixed = shaper.shape("Loss · 損失", shaper.resolveFamily(FAMILY));
  assert(mixed.every((g) => FONTS[g.face].family === "Noto Sans JP"));
  // Generic and unknown families resolve to the default family; the first family we have wins.
  assert.deepEqual(shaper.resolveFamily("Arial, sans-serif"), 0);
  assert.deepEqual(shaper.resolveFamily("'Noto Sans JP', 'DejaVu Sans'"), 1);
  assert.deepEqual(shaper.resolveFamily("Nope"), 0);
});

function svgDoc(markup: string): { win: Window; el: (sel: string) => DomNode } {
  const win = new Window();
  installSvgTextMetrics(win as unknown as PatchableWindow, shaper);
  win.document.body.innerHTML =
    `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300">${markup}</svg>`;
  return { win, el: (sel) => win.document.querySelector(sel) as unknown as DomNode };
}

Deno.test("<text> layout: font size, anchor, x/y/dx/dy, em units, tspan lines, whitespace", async () => {
  const style = `font-family: ${FAMILY}; font-size: 20px`;
  const { win, el } = svgDoc(
    `<text id="a" x="100" y="50" style="${style}">Hello   world </text>` +
      `<text id="b" x="100" y="50" text-anchor="middle" dy="0.5em" style="${style}">Hello world</text>` +
      `<text id="c" x="0" y="0" style="${style}"><tspan class="line" x="0" dy="0em">one</tspan>` +
      `<tspan class="line" x="0" dy="1.3em">two lines</tspan></text>` +
      `<g id="g" transform="translate(10,20)"><text id="d" x="0" y="0" transform="rotate(-90)" style="${style}">` +
      `tick</text></g>` +
      `<text id="e" x="5" y="5" style="${style}"><tspan style="font-size: 50%">small</tspan></text>`,
  );
  try {
    const w = shaper.measure("Hello world", 20, FAMILY);
    const { ascent, descent } = shaper.verticalMetrics(20, FAMILY);
    const a = layoutText(shaper, el("#a"))!;
    near(a.x, 100, 1e-9);
    near(a.width, w, 1e-6, "runs of spaces collapse, trailing space trimmed");
    assert.deepEqual([a.y, a.height], [50 - ascent, ascent + descent]);
    const b = layoutText(shaper, el("#b"))!;
    near(b.x, 100 - w / 2, 1e-6);
    assert.deepEqual(b.y, 60 - ascent);
    const c = layoutText(shaper, el("#c"))!;
    near(c.width, shaper.measure("two lines", 20, FAMILY), 1e-6);
    near(c.height, 26 + ascent + descent, 1e-6);
    // Rotated tick label in a translated group: client box swaps width and height.
    const d = clientBox(shaper, el("#d"));
    const dw = shaper.measure("tick", 20, FAMILY);
    near(d.width, ascent + descent, 1e-6);
    near(d.height, dw, 1e-6);
    near(d.x, 10 - ascent, 1e-6);
    near(d.y, 20 - dw, 1e-6);
    const e = layoutText(shaper, el("#e"))!;
    near(e.width, shaper.measure("small", 10, FAMILY), 1e-6);
    // The DOM methods Plotly calls.
    const node = win.document.querySelector("#a") as unknown as {
      getBoundingClientRect(): DOMRect;
      getBBox(): DOMRect;
      getComputedTextLength(): number;
    };
    near(node.getBoundingClientRect().width, w, 1e-6);
    near(node.getBBox().width, w, 1e-6);
    near(node.getComputedTextLength(), w, 1e-6);
    const g = win.document.querySelector("#g") as unknown as { getBoundingClientRect(): DOMRect };
    near(g.getBoundingClientRect().height, dw, 1e-6);
  } finally {
    await win.happyDOM.close();
  }
});

Deno.test("geometry helpers: Plotly's 1x1 reference path, transforms", () => {
  assert.deepEqual(pathBox("M0,0H1V1H0Z"), { x: 0, y: 0, width: 1, height: 1 });
  assert.deepEqual(pathBox("m10,10l5,5h-20v-30z"), { x: -5, y: -15, width: 20, height: 30 });
  const m = parseTransform("translate(10,20) rotate(90)");
  near(m[0], 0, 1e-12);
  near(m[1], 1, 1e-12);
  assert.deepEqual([m[4], m[5]], [10, 20]);
  assert.deepEqual(parseTransform("scale(2)").slice(0, 4), [2, 0, 0, 2]);
});
