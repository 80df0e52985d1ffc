// ESLint 9 flat config: typescript-eslint's recommended type-checked rules over every .ts file
// (issue #17). Rules turned off below are wrong for this codebase; each says why.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '**/build/**', '**/*.mjs', '**/*.js', '**/*.cjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname }
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // tsc reports unused names (noUnusedLocals/noUnusedParameters, run before lint); a second checker with other `_` rules only disagrees.
      '@typescript-eslint/no-unused-vars': 'off',
      // `RoleName | BytesLike` names the values callers are meant to pass; the literals beside string are documentation.
      '@typescript-eslint/no-redundant-type-constituents': 'off',
      // A caught `unknown` passed on unchanged keeps its cause; wrapping it only to please the rule would hide it.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // A teardown registered before its resource exists reads the `let` it is assigned to later.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }]
    }
  },
  {
    // What a model's worker thread loads: each model starts a fresh isolate, so its module graph is
    // on every load's path. The protocol barrel (CBOR, Merkle, receipts, notes, …) cost 45-55 ms.
    files: ['agent/session/model-worker.ts', 'agent/session/worker-messages.ts', 'agent/model/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        patterns: [{ regex: '/protocol/index\\.js$', allowTypeImports: true, message: 'import the protocol module itself: the barrel loads the whole protocol into every model worker' }]
      }]
    }
  },
  {
    files: ['test/**/*.ts', 'test-slow/**/*.ts'],
    rules: {
      // tap queues its subtests itself: t.test() returns a promise only for callers that want the result.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }]
      }],
      // tap callbacks are async by house convention, so a later await needs no signature change.
      '@typescript-eslint/require-await': 'off',
      // Tests probe untyped JSON (CLI stdout, HTTP bodies) and caught errors; the assertion that follows is the type check.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off'
    }
  }
)
