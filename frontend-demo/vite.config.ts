import { defineConfig } from 'vitest/config';
import vue from '@vitejs/plugin-vue';

/** The gateway the dev server forwards to; the built app is served by the gateway itself. */
const gateway = 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true },
  server: {
    proxy: {
      '/api': gateway,
      '/health': gateway,
      '/v1': gateway,
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
