// ts-node's transpiler for tap (tsconfig.tap.json): esbuild, as tsx uses for the scripts, instead of
// the TypeScript compiler. Tests were already transpile-only (tsc type-checks them in `npm test`); loading and
// running the TypeScript compiler in each of the ~120 test processes cost about 1-2 s of CPU apiece.
const { createRequire } = require('node:module')

// esbuild comes with tsx (a dependency); resolving it through tsx avoids relying on hoisting.
const { transformSync } = createRequire(require.resolve('tsx'))('esbuild')

// What tsc would do with tsconfig.json for one file in isolation (target ES2022 defines class fields).
const TSCONFIG_RAW = { compilerOptions: { target: 'ES2022', useDefineForClassFields: true } }

exports.create = function create () {
  return {
    transpile (input, { fileName }) {
      const commonJs = /\.c[jt]sx?$/.test(fileName)
      const out = transformSync(input, {
        loader: /x$/.test(fileName) ? 'tsx' : 'ts',
        format: commonJs ? 'cjs' : 'esm',
        // esnext, not es2022: esbuild drops import attributes (`with { type: 'json' }`) for older
        // targets, which node then refuses; tsc keeps them, and node 20 runs all ES2022 syntax.
        target: 'esnext',
        sourcemap: 'external',
        sourcefile: fileName,
        tsconfigRaw: TSCONFIG_RAW
      })
      return { outputText: out.code, sourceMapText: out.map }
    }
  }
}
