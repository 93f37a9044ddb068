// The one error the drive model throws for a request it refuses: a status and a message for the user.
// Routes turn it into an HttpError (or show it on the page the user was on).
export type DriveStatus = 400 | 404 | 409 | 413 | 500;

export class DriveError extends Error {
  override name = 'DriveError';
  constructor(
    readonly status: DriveStatus,
    message: string,
  ) {
    super(message);
  }
}
