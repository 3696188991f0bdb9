import { h } from "preact";
import htm from "htm";

/** JSX-like templates without a compile step: the bundler only has to resolve imports. */
export const html = htm.bind(h);
