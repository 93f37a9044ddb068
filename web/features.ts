// The feature areas every frontend mounts, beside the account pages at `/`.
import type { Feature } from './app.js';
import { adminRoutes } from './routes/admin.js';

export const FEATURES: Feature[] = [
  { prefix: '/admin', routes: adminRoutes },
];
