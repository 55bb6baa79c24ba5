import { defineConfig } from 'vitest/config';
import vue from '@vitejs/plugin-vue';
import type { ProxyOptions } from 'vite';

/** The gateway the dev server forwards to; the built app is served by the gateway itself. */
const gateway = 'http://127.0.0.1:8080';

/**
 * Forwarding to the gateway as if the page came from it: the proxy rewrites `Host`, so `Origin`
 * is set to the gateway's too, or its CSRF check would refuse every cookie-authenticated POST
 * from the dev server's origin as cross-origin.
 */
const toGateway: ProxyOptions = {
  target: gateway,
  changeOrigin: true,
  headers: { origin: gateway },
};

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true },
  server: {
    proxy: {
      '/api': toGateway,
      '/health': toGateway,
      '/v1': toGateway,
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
