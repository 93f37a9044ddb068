// The feature areas every frontend mounts, beside the account pages at `/`.
import type { Feature } from './app.js';

export const FEATURES: Feature[] = [];
