/** Rendering errors: a stable `code` each; messages never hold view values (they may be secrets). */

export const RENDER_CODES = {
  /** No such template for the plugin (in any directory, for this OS). */
  MISSING: 'CARPD_ERR_TEMPLATE_MISSING',
  /** The template names a variable or section the view does not define. */
  VARIABLE: 'CARPD_ERR_TEMPLATE_VARIABLE',
  /** The template does not parse. */
  SYNTAX: 'CARPD_ERR_TEMPLATE_SYNTAX',
  /** A value cannot be written in the target format, or the escaper is unknown. */
  ESCAPE: 'CARPD_ERR_TEMPLATE_ESCAPE',
  /** A template or file name that is not allowed (a path, `..`, relative target). */
  NAME: 'CARPD_ERR_TEMPLATE_NAME',
  /** Writing the rendered file failed. */
  WRITE: 'CARPD_ERR_WRITE',
} as const;

export class RenderError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RenderError';
    this.code = code;
  }
}
