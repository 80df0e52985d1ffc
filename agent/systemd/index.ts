/**
 * The systemd packaging of the agent: where the unit template, the installer and the example
 * config live, and the rendering install.sh applies (for tools and tests).
 */
import { fileURLToPath } from 'node:url'

/** The unit template, with @NODE@ and @APP_DIR@ placeholders. */
export const UNIT_TEMPLATE_PATH = fileURLToPath(new URL('./provenance-agent.service', import.meta.url))
export const INSTALL_SCRIPT_PATH = fileURLToPath(new URL('./install.sh', import.meta.url))
/** The drop-in install.sh --tpm adds for keyStore "tpm": only /dev/tpmrm0 is granted. */
export const TPM_DROPIN_PATH = fileURLToPath(new URL('./tpm.conf', import.meta.url))
export const EXAMPLE_CONFIG_PATH = fileURLToPath(new URL('./config.example.json', import.meta.url))

/** The unit with its placeholders filled in, as install.sh writes it. */
export function renderUnit (template: string, values: { node: string, appDir: string }): string {
  return template.replaceAll('@NODE@', values.node).replaceAll('@APP_DIR@', values.appDir)
}
