import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

/** `files` may not import from the given folders of src/, nor from services/ or mixins/. */
function layer(files, higher) {
  const group = [...higher.flatMap((d) => [`../${d}/*`, `../../${d}/*`]), "**/services/*", "**/mixins/*"];
  const message = "a lower layer imports a higher one (store ← placement ← session ← services)";
  return [
    { files: [files], rules: { "no-restricted-imports": ["error", { patterns: [{ group, message }] }] } },
  ];
}

export default tseslint.config(
  { ignores: ["node_modules/", ".cache/", ".data/", "artifacts/", "public/vendor/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.mocha } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
    },
  },
  {
    // Tests and benches read untyped answers (JSON bodies, socket payloads); production code may not.
    files: ["test/**", "bench/**", "tools/**"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  // Layers (DESIGN.md): store ← placement ← session ← services. A lower layer never imports a higher one.
  ...layer("src/store/**", ["placement", "session", "engines", "gateway", "io", "webhooks", "repl"]),
  ...layer("src/placement/**", ["session", "engines", "gateway", "io", "webhooks", "repl"]),
  ...layer("src/engines/**", ["session", "placement", "gateway", "io", "webhooks", "repl"]),
  ...layer("src/session/**", ["gateway", "io", "webhooks", "repl"]),
  {
    files: ["public/**/*.js"],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ["**/*.cjs"],
    languageOptions: { sourceType: "commonjs" },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
