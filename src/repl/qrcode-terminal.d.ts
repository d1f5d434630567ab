// qrcode-terminal 0.12 ships no type declarations.
declare module "qrcode-terminal" {
  interface GenerateOptions {
    /** Half-height blocks. @default false */
    small?: boolean;
  }
  const qrcodeTerminal: {
    generate(input: string, opts: GenerateOptions, cb: (output: string) => void): void;
    generate(input: string, cb: (output: string) => void): void;
    setErrorLevel(level: "L" | "M" | "Q" | "H"): void;
  };
  export default qrcodeTerminal;
}
