// ESLint (flat config): typescript-eslint's strict, type-checked rules over the
// TypeScript sources, ESLint's recommended rules over the JavaScript tools.
// Rules turned off or relaxed below say why, in one line each.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.tap/', 'offload/native/build/', 'bench-results/'] },
  { ...js.configs.recommended, ignores: ['test/**/*.ts'] },
  {
    rules: {
      // `catch {}` says plainly that the failure is ignored.
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['**/*.ts'],
    // The tests are not under the type-checked rules yet: they get the one rule below.
    ignores: ['test/**/*.ts'],
    extends: [tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // With noUncheckedIndexedAccess, `!` marks a read the loop bound or a length check guarantees (typed-array hot paths).
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Numbers and booleans in messages are meant to print as String() prints them.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `(x) => f(x)` shorthands and `return f()` in a void function are idiomatic, not confusing.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true }],
      // Underscore-prefixed parameters are required by an interface and unused on purpose (tsc's noUnused* agree).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      // Async functions without await implement Promise-returning contracts (Fastify plugins, close()): a throw stays a rejection.
      '@typescript-eslint/require-await': 'off',
      // It trusts static types over run time: it flags re-checks of a field after an await ("closed while reading")
      // and validation of values whose type is only asserted (channel messages, parsed JSON and SDP, options from JS).
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  {
    // The tests: no explicit any (test/helpers/apiTypes.ts types what they read from the API).
    files: ['test/**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: { '@typescript-eslint/no-explicit-any': 'error' },
  },
  {
    // sdp-transform's types say string where its parser gives numbers for numeric-looking text: the conversions are needed.
    files: ['server/recordRequest.ts'],
    rules: { '@typescript-eslint/no-unnecessary-type-conversion': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ignores: ['server/dashboard/**'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    files: ['server/dashboard/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
);
