#!/usr/bin/env bash
# The vendor flow end to end on a small seeded generator and scikit-image's bundled photos:
# export -> apply -> prep -> infer -> eval -> bench -> profile. Run it in an empty folder:
#   mkdir /tmp/flow && cd /tmp/flow && bash /path/to/cgsurg/examples/flow.sh
set -e
python -c "
import torch; from graphsurgeon_cg import GeneratorSpec, build_generator
torch.manual_seed(0); torch.save(build_generator(GeneratorSpec('resnet_6blocks', ngf=16)).state_dict(), 'latest_net_G_A.pth')"
python -c "
from pathlib import Path; from PIL import Image; from skimage import data
Path('testA').mkdir(exist_ok=True)
for name in ('astronaut', 'chelsea', 'coffee', 'rocket'): Image.fromarray(getattr(data, name)()).save(f'testA/{name}.jpg')"
echo '$ cgsurg export --g-a latest_net_G_A.pth -o onnxmodel --size 128'
cgsurg export --g-a latest_net_G_A.pth -o onnxmodel --size 128
echo '$ cgsurg apply onnxmodel/model_Ga.onnx -o onnxmodel/model_Ga_ascend.onnx --passes "fold-constants,reflect2const(min_cos=0.8),pad-conv-fusion,static-batch(batch=1)" --inputs testA'
cgsurg apply onnxmodel/model_Ga.onnx -o onnxmodel/model_Ga_ascend.onnx --passes "fold-constants,reflect2const(min_cos=0.8),pad-conv-fusion,static-batch(batch=1)" --inputs testA
echo '$ cgsurg prep testA -o prep_testA --size 128'
cgsurg prep testA -o prep_testA --size 128
echo '$ cat prep_testA/testA.info'
cat prep_testA/testA.info
echo '$ cgsurg infer onnxmodel/model_Ga.onnx --data prep_testA/testA.info -o out_onnx --batch 4'
cgsurg infer onnxmodel/model_Ga.onnx --data prep_testA/testA.info -o out_onnx --batch 4
echo '$ cgsurg infer onnxmodel/model_Ga_ascend.onnx --data prep_testA/testA.info -o out_ascend --png'
cgsurg infer onnxmodel/model_Ga_ascend.onnx --data prep_testA/testA.info -o out_ascend --png
echo '$ cgsurg eval out_onnx out_ascend --min-cos 0.99'
cgsurg eval out_onnx out_ascend --min-cos 0.99 || echo "(exit $?)"
echo '$ cgsurg bench onnxmodel/model_Ga.onnx --batches 1,16 --rounds 10'
cgsurg bench onnxmodel/model_Ga.onnx --batches 1,16 --rounds 10
echo '$ cgsurg bench onnxmodel/model_Ga_ascend.onnx --batches 1,16 --rounds 10'
cgsurg bench onnxmodel/model_Ga_ascend.onnx --batches 1,16 --rounds 10
echo '$ cgsurg profile onnxmodel/model_Ga.onnx'
cgsurg profile onnxmodel/model_Ga.onnx
