export { loadOrCreateDeviceKey, type DeviceKey } from './device-key.js'
