/**
 * The fonts the dashboard PNG is drawn with, embedded as bytes so that neither `deno run` nor the compiled binary
 * needs system fonts (resvg-wasm cannot see any): DejaVu Sans for Latin text (Bitstream Vera license + public
 * domain changes) and Noto Sans JP Regular for Japanese (SIL Open Font License 1.1).
 *
 * The same bytes feed resvg (drawing) and fontkit (measuring, src/report/text_layout.ts), so what Plotly lays out
 * is what resvg draws. The order of FONTS is resvg's font database order, which is also its fallback order.
 */
import dejavuSans from "dejavu-fonts-ttf/ttf/DejaVuSans.ttf" with { type: "bytes" };
import notoSansJp from "@expo-google-fonts/noto-sans-jp/400Regular/NotoSansJP_400Regular.ttf" with {
  type: "bytes",
};

export interface EmbeddedFont {
  /** The family name in the font's name table (what `font-family` must say to select it). */
  family: string;
  bytes: Uint8Array;
  license: string;
}

export const FONTS: readonly EmbeddedFont[] = [
  {
    family: "DejaVu Sans",
    bytes: dejavuSans,
    license: "Bitstream Vera Fonts license (DejaVu changes: public domain), npm:dejavu-fonts-ttf@2.37.3",
  },
  {
    family: "Noto Sans JP",
    bytes: notoSansJp,
    license: "SIL Open Font License 1.1, npm:@expo-google-fonts/noto-sans-jp@0.4.3",
  },
];

/** The family every generic name (sans-serif, serif, monospace, ...) resolves to, in resvg and in our layout. */
export const DEFAULT_FAMILY = "DejaVu Sans";

/**
 * The CSS font-family of the figure. resvg picks the first listed family it has (DejaVu Sans) and falls back
 * per text chunk to Noto Sans JP for characters DejaVu lacks; browsers showing the HTML use what they have.
 */
export const FIGURE_FONT_FAMILY = '"DejaVu Sans", "Noto Sans JP", "Open Sans", Verdana, Arial, sans-serif';
