// @ts-check
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores(['dist/']),
  js.configs.recommended,
  // Type-aware: a floating or misused promise is how a plugin or a command could stall or crash the protocol.
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test registers tests synchronously; their returned promises are the runner's business.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      // The code is written for noUncheckedIndexedAccess (`buf[i]!`), which tsconfig does not enable yet.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // `async` without `await` is deliberate here: it turns a synchronous throw into a rejection the caller handles.
      '@typescript-eslint/require-await': 'off',
      // A leading underscore marks a name that is unused on purpose (interface-shaped parameters, skipped fields).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Plugins and this file are plain ES modules outside tsconfig.json.
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
);
