// Denoise_Folder.ijm: a lab workflow, unchanged from lab to lab.
//
// Opens every TIFF in a folder, runs EM Denoise on it and saves the result into another
// folder under the name 'emdenoise denoise' would give it (<name>_denoised-<model>.tif).
// Files whose result exists are skipped; a file that fails is reported and the batch goes on.
//
// Interactive: Plugins > Macros > Run... and pick the folders.
// Headless:    ImageJ -batch Denoise_Folder.ijm "in=[/data/raw] out=[/data/denoised] model=ede-kernel-tem-7 server=embedded"
// (model=default picks the default model; server=host:port uses a running 'emdenoise serve').

arg = getArgument();
input = call("ij.Macro.getValue", arg, "in", "");
output = call("ij.Macro.getValue", arg, "out", "");
model = call("ij.Macro.getValue", arg, "model", "default");
server = call("ij.Macro.getValue", arg, "server", "embedded");
if (input == "")
	input = getDirectory("Folder of TIFF files to denoise");
if (output == "")
	output = getDirectory("Folder for the denoised files");
if (!endsWith(input, File.separator)) input = input + File.separator;
if (!endsWith(output, File.separator)) output = output + File.separator;
File.makeDirectory(output);

setBatchMode(true);
files = getFileList(input);
written = 0;
skipped = 0;
failed = 0;
for (i = 0; i < files.length; i++) {
	name = files[i];
	lower = toLowerCase(name);
	if (!(endsWith(lower, ".tif") || endsWith(lower, ".tiff")))
		continue;
	stem = substring(name, 0, lastIndexOf(name, "."));
	if (model != "default" && File.exists(output + stem + "_denoised-" + model + ".tif")) {
		print("skipped " + name + ": result exists");
		skipped++;
		continue;
	}
	open(input + name);
	before = getImageID();
	run("EM Denoise", "model=" + model + " server=" + server);
	if (getImageID() == before) {
		// EM Denoise printed why; keep going with the next file.
		print("failed " + name);
		failed++;
	} else {
		saveAs("Tiff", output + getTitle());
		print("wrote " + output + getTitle());
		written++;
	}
	close("*");
}
print("Denoise_Folder: " + written + " written, " + skipped + " skipped, " + failed + " failed");
