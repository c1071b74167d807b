/** `hub-broker admin`: the commands live in ./admin/, one file per resource. */
export { EXIT_FAILED, EXIT_USAGE, help, run, type AdminIo } from './admin/index.js';
