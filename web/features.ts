// The feature areas every frontend mounts, beside the account pages at `/`.
import type { Feature } from './app.js';
import { adminRoutes } from './routes/admin.js';
import { driveRoutes } from './routes/drive.js';
import { mailRoutes } from './routes/mail.js';

export const FEATURES: Feature[] = [
  { prefix: '/admin', routes: adminRoutes },
  { prefix: '/drive', routes: driveRoutes },
  { prefix: '/mail', routes: mailRoutes },
];
